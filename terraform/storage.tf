# Access logs of the two buckets below.
resource "google_storage_bucket" "logs" {
  name                        = "${var.project_id}-${var.name_prefix}-bucket-logs"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
  encryption {
    default_kms_key_name = var.kms_key
  }
  #checkov:skip=CKV_GCP_62:this is the log sink of the other buckets; logging it into itself would loop
}

# Checkpoint anchors: write-once copies of every signed checkpoint, outside the database.
resource "google_storage_bucket" "anchors" {
  name                        = "${var.project_id}-${var.name_prefix}-anchors"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  retention_policy {
    retention_period = var.anchor_retention_days * 86400
  }
  versioning {
    enabled = true
  }
  encryption {
    default_kms_key_name = var.kms_key
  }
  logging {
    log_bucket = google_storage_bucket.logs.name
  }
}

# Functions that seal create anchors (never overwrite or delete: objectCreator + viewer).
resource "google_storage_bucket_iam_member" "anchor_writer" {
  for_each = { for name, fn in local.functions : name => fn if fn.anchors == "write" }
  bucket   = google_storage_bucket.anchors.name
  role     = "roles/storage.objectCreator"
  member   = "serviceAccount:${google_service_account.function[each.key].email}"
}

resource "google_storage_bucket_iam_member" "anchor_reader" {
  for_each = { for name, fn in local.functions : name => fn if fn.anchors != "none" }
  bucket   = google_storage_bucket.anchors.name
  role     = "roles/storage.objectViewer"
  member   = "serviceAccount:${google_service_account.function[each.key].email}"
}

# Source archives of the functions, named by content hash so every change redeploys.
resource "google_storage_bucket" "sources" {
  name                        = "${var.project_id}-${var.name_prefix}-sources"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
  encryption {
    default_kms_key_name = var.kms_key
  }
  logging {
    log_bucket = google_storage_bucket.logs.name
  }
}

# The static tile mirror (C2SP tlog-tiles, shared/tlog/mirror.py): each seal writes new tiles
# (create-only) and replaces <tenant>/tiles/checkpoint, which the anchors' retention would
# forbid, hence a bucket of its own. Private: shared only with var.mirror_readers.
resource "google_storage_bucket" "mirror" {
  name                        = "${var.project_id}-${var.name_prefix}-mirror"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
  encryption {
    default_kms_key_name = var.kms_key
  }
  logging {
    log_bucket = google_storage_bucket.logs.name
  }
}

# Functions that seal write the mirror (objectUser: create, and replace the checkpoint).
resource "google_storage_bucket_iam_member" "mirror_writer" {
  for_each = { for name, fn in local.functions : name => fn if fn.anchors == "write" }
  bucket   = google_storage_bucket.mirror.name
  role     = "roles/storage.objectUser"
  member   = "serviceAccount:${google_service_account.function[each.key].email}"
}

resource "google_storage_bucket_iam_member" "mirror_reader" {
  for_each = toset(var.mirror_readers)
  bucket   = google_storage_bucket.mirror.name
  role     = "roles/storage.objectViewer"
  member   = each.value
}
