variable "project_id" {
  description = "Google Cloud project that hosts the registry."
  type        = string
}

variable "region" {
  description = "Region of the functions, the Cloud SQL instance, the scheduler and the buckets."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix of every resource name (lets several deployments share a project)."
  type        = string
  default     = "plant"
}

variable "network" {
  description = "Self link of the VPC network the Cloud SQL instance gets its private IP in (private services access must be set up on it)."
  type        = string
}

variable "vpc_connector" {
  description = "Serverless VPC Access connector (or Direct VPC egress network) the functions use to reach the private IP."
  type        = string
}

variable "database_tier" {
  description = "Cloud SQL machine tier."
  type        = string
  default     = "db-custom-2-7680"
}

variable "database_version" {
  description = "Cloud SQL PostgreSQL major version."
  type        = string
  default     = "POSTGRES_18"
}

variable "ingress" {
  description = "Who may reach the functions' URLs at the network level (IAM is checked regardless). ALLOW_INTERNAL_AND_GCLB keeps them behind a load balancer; Cloud Scheduler counts as internal."
  type        = string
  default     = "ALLOW_INTERNAL_AND_GCLB"
}

variable "invokers" {
  description = "Members (e.g. group:auditors@example.com, serviceAccount:app@...) allowed to invoke each function, by function name."
  type        = map(list(string))
  default     = {}
}

variable "audit_tenants" {
  description = "Tenants audited by Cloud Scheduler; one job each, calling POST /audit/runs."
  type        = list(string)
  default     = []
}

variable "audit_schedule" {
  description = "Cron schedule of the incremental audits (time zone: audit_time_zone)."
  type        = string
  default     = "17 * * * *"
}

variable "seal_schedule" {
  description = "Cron schedule of each audited tenant's seal (POST /log/seal): the bound on a current-version proof's age."
  type        = string
  default     = "* * * * *"
}

variable "audit_time_zone" {
  description = "Time zone of audit_schedule."
  type        = string
  default     = "Etc/UTC"
}

variable "embeddings_refresh_schedule" {
  description = "Cron schedule of each audited tenant's skill-embeddings refresh (POST /registry/skills/embeddings/refresh); its period bounds how stale a similar-skill search may be."
  type        = string
  default     = "*/5 * * * *"
}

variable "anchor_retention_days" {
  description = "How long each anchored checkpoint is kept unchangeable in the anchor bucket."
  type        = number
  default     = 2555
}

variable "log_origin_prefix" {
  description = "Prefix of each tenant log's checkpoint origin line (<prefix>/<tenant>); also the signing key's name."
  type        = string
}

variable "kms_key" {
  description = "Cloud KMS key (projects/.../cryptoKeys/...) encrypting the secrets and the buckets."
  type        = string
}

variable "witnesses" {
  description = "The log's witnesses (C2SP tlog-witness), JSON {\"<tenant> or *\": [{\"name\", \"vkey\", \"url\"}]}; empty: none. Not secret (public keys and URLs)."
  type        = string
  default     = ""
}

variable "witness_timeout_seconds" {
  description = "The most a seal waits for its witnesses (each request's connect and reads too); a slow or down witness never fails a seal."
  type        = number
  default     = 3
}

variable "mirror_readers" {
  description = "Members (e.g. user:auditor@example.com) given read access to the static tile mirror bucket. Empty by default: nothing is shared until the operator names an auditor."
  type        = list(string)
  default     = []
}

variable "audit_job_tenants" {
  description = "Tenants whose full audit runs as a Cloud Run job in parallel parts (plant audit --part, then the merge), one job each; for logs one audit process cannot take in its time."
  type        = list(string)
  default     = []
}

variable "audit_job_image" {
  description = "Container image holding this repository with requirements.txt installed, run from its root (e.g. `gcloud builds submit --pack image=...` with Google Cloud's buildpacks); empty: no audit job is created."
  type        = string
  default     = ""
}

variable "audit_job_tasks" {
  description = "Parts of each audit job: its task_count, all run at once (parallelism)."
  type        = number
  default     = 4
}

variable "audit_job_cpu" {
  description = "vCPUs of each audit job task (also its worker processes, PLANT_AUDIT_WORKERS)."
  type        = string
  default     = "2"
}

variable "audit_job_memory" {
  description = "Memory of each audit job task; the merging task holds a summary of every entity (~500 bytes each, as the audit function does)."
  type        = string
  default     = "2Gi"
}

variable "audit_job_timeout_seconds" {
  description = "The most one audit job task (its part, and the merge for the last) may run."
  type        = number
  default     = 3600
}

variable "audit_job_schedule" {
  description = "Cron schedule of each audit job's execution (time zone: audit_time_zone): a full audit in parts."
  type        = string
  default     = "41 3 * * 0"
}
