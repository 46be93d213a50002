package deploy

// The CloudNativePG Go module (github.com/cloudnative-pg/cloudnative-pg/api)
// is refused by the module proxy here (403, tried again for issue 17), and
// its CRD schemas are not obtainable offline. The types below transcribe the
// part of the postgresql.cnpg.io/v1 API (Cluster, ScheduledBackup) that the
// overlays use, field names and JSON types as the CNPG API reference gives
// them; DecodeObject decodes the custom resources strictly into them, so a
// misspelt or misplaced field fails the build of the overlay. A field CNPG
// has but that is not transcribed fails too: add it here (from the API
// reference) when a manifest starts to use it.

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type cnpgCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Instances             int    `json:"instances"`
		ImageName             string `json:"imageName,omitempty"`
		PrimaryUpdateStrategy string `json:"primaryUpdateStrategy,omitempty"`
		InheritedMetadata     *struct {
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"inheritedMetadata,omitempty"`
		Bootstrap *struct {
			InitDB *struct {
				Database string `json:"database,omitempty"`
				Owner    string `json:"owner,omitempty"`
			} `json:"initdb,omitempty"`
		} `json:"bootstrap,omitempty"`
		PostgreSQL *struct {
			SharedPreloadLibraries []string          `json:"shared_preload_libraries,omitempty"`
			Parameters             map[string]string `json:"parameters,omitempty"`
		} `json:"postgresql,omitempty"`
		Storage *struct {
			Size         string  `json:"size,omitempty"`
			StorageClass *string `json:"storageClass,omitempty"`
		} `json:"storage,omitempty"`
		Monitoring *struct {
			EnablePodMonitor bool `json:"enablePodMonitor,omitempty"`
		} `json:"monitoring,omitempty"`
		Backup *struct {
			RetentionPolicy   string `json:"retentionPolicy,omitempty"`
			BarmanObjectStore *struct {
				DestinationPath string `json:"destinationPath"`
				S3Credentials   *struct {
					AccessKeyID     *cnpgSecretKey `json:"accessKeyId,omitempty"`
					SecretAccessKey *cnpgSecretKey `json:"secretAccessKey,omitempty"`
				} `json:"s3Credentials,omitempty"`
				Wal *struct {
					Compression string `json:"compression,omitempty"`
					MaxParallel int    `json:"maxParallel,omitempty"`
				} `json:"wal,omitempty"`
				Data *struct {
					Compression string `json:"compression,omitempty"`
				} `json:"data,omitempty"`
			} `json:"barmanObjectStore,omitempty"`
		} `json:"backup,omitempty"`
		Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
	} `json:"spec"`
}

type cnpgSecretKey struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

type cnpgScheduledBackup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Schedule             string `json:"schedule"`
		BackupOwnerReference string `json:"backupOwnerReference,omitempty"`
		Immediate            bool   `json:"immediate,omitempty"`
		Method               string `json:"method,omitempty"`
		Cluster              struct {
			Name string `json:"name"`
		} `json:"cluster"`
	} `json:"spec"`
}
