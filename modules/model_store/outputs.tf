output "bucket_name" {
  description = "Name of the model bucket."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the model bucket."
  value       = aws_s3_bucket.this.arn
}

output "kms_key_arn" {
  description = "ARN of the KMS key encrypting the bucket (created here or given)."
  value       = local.kms_key_arn
}

output "kms_key_id" {
  description = "Id of the KMS key encrypting the bucket."
  value       = var.create_kms_key ? aws_kms_key.this[0].key_id : element(split("/", var.kms_key_arn), 1)
}

output "kms_alias_name" {
  description = "Alias of the created KMS key (null when create_kms_key is false)."
  value       = var.create_kms_key ? aws_kms_alias.this[0].name : null
}

output "kms_alias_arn" {
  description = "ARN of the created KMS key alias (null when create_kms_key is false)."
  value       = var.create_kms_key ? aws_kms_alias.this[0].arn : null
}

output "model_uri" {
  description = "S3 URI of the uploaded model bundle, ending with a slash (\"s3://<bucket>/<model_prefix>/<name>/<version>/\"); the prefix of all models when upload_model_bundle is false."
  value       = "s3://${aws_s3_bucket.this.id}/${local.model_key_prefix}/"
  # Whatever is configured with this URI (a function version, a job definition) is changed
  # only once the bundle's files are there.
  depends_on = [aws_s3_object.model]
}

output "model_prefix_arn" {
  description = "ARN pattern of the bundle's objects (\"<bucket arn>/<prefix>/*\"), for s3:GetObject grants."
  value       = "${aws_s3_bucket.this.arn}/${local.model_key_prefix}/*"
}

output "model_name" {
  description = "Model name read from model.json (null when upload_model_bundle is false)."
  value       = local.model_name
}

output "model_version" {
  description = "Model version read from model.json (null when upload_model_bundle is false)."
  value       = local.model_version
}

output "model_sha256" {
  description = "sha256 of model.tflite as recorded in model.json and checked at plan time (null when upload_model_bundle is false)."
  value       = local.model_sha256
}

output "model_object_keys" {
  description = "S3 keys of the uploaded bundle files, by file name."
  value       = { for k, obj in aws_s3_object.model : local.bundle_objects[k].file => obj.key if local.bundle_objects[k].bundle == "primary" }
}

output "model_object_version_ids" {
  description = "S3 version ids of the uploaded bundle files, by file name (change when a file changes)."
  value       = { for k, obj in aws_s3_object.model : local.bundle_objects[k].file => obj.version_id if local.bundle_objects[k].bundle == "primary" }
}

output "candidate" {
  description = "The candidate bundle of a canary rollout (candidate_bundle_dir): uri (\"s3://<bucket>/<model_prefix>/<name>/<version>/\"), prefix_arn (for s3:GetObject grants), name, version and sha256 from its model.json. Null without a candidate."
  value = local.has_candidate ? {
    uri        = "s3://${aws_s3_bucket.this.id}/${local.candidate_key_prefix}/"
    prefix_arn = "${aws_s3_bucket.this.arn}/${local.candidate_key_prefix}/*"
    name       = local.candidate_name
    version    = local.candidate_version
    sha256     = local.candidate_sha256
  } : null
  # A function version configured with this URI is published only once the files are there.
  depends_on = [aws_s3_object.model]
}

output "candidate_object_version_ids" {
  description = "S3 version ids of the candidate bundle's files, by file name (empty without a candidate)."
  value       = { for k, obj in aws_s3_object.model : local.bundle_objects[k].file => obj.version_id if local.bundle_objects[k].bundle == "candidate" }
}
