# Secret containers only: their values never pass through Terraform (or its state).
# Add them with `gcloud secrets versions add` (see docs/deploy.md).

resource "google_secret_manager_secret" "signing_key" {
  secret_id = "${var.name_prefix}-signing-keys"
  replication {
    user_managed {
      replicas {
        location = var.region
        customer_managed_encryption {
          kms_key_name = var.kms_key
        }
      }
    }
  }
}

# The report-signing key (PAdES on PDFs, DSSE on JSON and CSV reports): a key of its own, so
# a report's signature never stands for a checkpoint's.
resource "google_secret_manager_secret" "report_signing_key" {
  secret_id = "${var.name_prefix}-report-signing-key"
  replication {
    user_managed {
      replicas {
        location = var.region
        customer_managed_encryption {
          kms_key_name = var.kms_key
        }
      }
    }
  }
}

resource "google_secret_manager_secret" "identity_map" {
  secret_id = "${var.name_prefix}-identity-map"
  replication {
    user_managed {
      replicas {
        location = var.region
        customer_managed_encryption {
          kms_key_name = var.kms_key
        }
      }
    }
  }
}

# The signing keyring: only the functions that seal or certify read it.
resource "google_secret_manager_secret_iam_member" "signing_key" {
  for_each  = { for name, fn in local.functions : name => fn if fn.signs }
  secret_id = google_secret_manager_secret.signing_key.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function[each.key].email}"
}

# The report-signing key: only the functions that sign reports (export) read it.
resource "google_secret_manager_secret_iam_member" "report_signing_key" {
  for_each  = { for name, fn in local.functions : name => fn if fn.reports }
  secret_id = google_secret_manager_secret.report_signing_key.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function[each.key].email}"
}

# The identity map (caller email -> tenant and roles): every function reads it.
resource "google_secret_manager_secret_iam_member" "identity_map" {
  for_each  = local.functions
  secret_id = google_secret_manager_secret.identity_map.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function[each.key].email}"
}
