variable "project_id" {
  description = "The witness operator's project (not the registry's)."
  type        = string
}

variable "region" {
  description = "Region of the function, its database and its key's replica."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "plant"
}

variable "network" {
  description = "VPC network (self link) the witness database is reachable on, privately."
  type        = string
}

variable "vpc_connector" {
  description = "Serverless VPC connector the function reaches its database through."
  type        = string
}

variable "kms_key" {
  description = "KMS key encrypting the witness key secret."
  type        = string
}

variable "database_tier" {
  description = "Cloud SQL tier: one row per witnessed log."
  type        = string
  default     = "db-f1-micro"
}

variable "source_bucket" {
  description = "Bucket of the source archive (the registry's, or the witness operator's copy)."
  type        = string
}

variable "source_object" {
  description = "Source archive object (main.py with the witness entry point)."
  type        = string
}

variable "logs" {
  description = "Logs witnessed, JSON {\"<origin>\": [\"<log vkey>\", ...]} (public keys)."
  type        = string
}

variable "ingress" {
  description = "Who may reach the witness: ALLOW_INTERNAL_ONLY unless the logs call it from outside."
  type        = string
  default     = "ALLOW_INTERNAL_ONLY"
}

variable "invokers" {
  description = "Members allowed to invoke it (the logs' service accounts); none by default."
  type        = list(string)
  default     = []
}
