# Every function of main.py, and what each may do. One line per function: adding a function
# to main.py means adding it here (tests/deploy/test_terraform.py checks both directions).
# The audit's memory: a full audit holds a summary of each of the tenant's entities, ~500 bytes
# each as measured at 1,000,000 (bench/audit.py), so 2Gi holds about 4,000,000. Its two
# vCPUs are for the full audit's entries pass, scanned by two worker processes (one core
# each: hashing and checking is Python work); PLANT_AUDIT_WORKERS follows cpu.
# The registry's memory: similar-skill search loads the embedding model on an instance's first
# similarity request (onnxruntime session and tokenizer, ~230-285 MiB resident), beside the
# 512Mi its other routes use.
# timeout: the seconds Cloud Run gives a request before it answers 504 and closes the
# connection to the container. The container's server (functions-framework's gunicorn) reads
# a request's body in one of its THREADS with no deadline of its own, so this is what bounds a
# caller that stalls: 60 s where the work is bounded by the 15 s statement timeout, 540 s for
# full audits and exports.
locals {
  functions = {
    registry = { entry_point = "registry", memory = "1Gi", cpu = "1", signs = false, reports = false, anchors = "none", timeout = 60 }
    log      = { entry_point = "log", memory = "512Mi", cpu = "1", signs = true, reports = false, anchors = "write", timeout = 60 }
    certify  = { entry_point = "certify", memory = "512Mi", cpu = "1", signs = true, reports = false, anchors = "write", timeout = 60 }
    audit    = { entry_point = "audit", memory = "2Gi", cpu = "2", signs = true, reports = false, anchors = "write", timeout = 540 }
    export   = { entry_point = "export", memory = "1Gi", cpu = "1", signs = true, reports = true, anchors = "write", timeout = 540 }
  }

  # Cloud SQL IAM database user names: the service account email without ".gserviceaccount.com".
  db_users = { for name, sa in google_service_account.function : name => trimsuffix(sa.email, ".gserviceaccount.com") }
  migrator = trimsuffix(google_service_account.migrator.email, ".gserviceaccount.com")
}
