module github.com/realmstream/realmstream/tools/healthcheck

go 1.26.8
