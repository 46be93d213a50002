module github.com/realmstream/realmstream/services/world

go 1.26.8

require github.com/realmstream/realmstream/libs v0.0.0

replace github.com/realmstream/realmstream/libs => ../../libs
