terraform {
  required_version = ">= 1.6"
  # State in a GCS bucket: `terraform init -backend-config="bucket=<state bucket>"`.
  backend "gcs" {
    prefix = "plant-registry"
  }
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
