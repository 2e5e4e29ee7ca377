output "data_bucket_name" {
  description = "Name of the data bucket (upload images under input/, results appear under output/)."
  value       = aws_s3_bucket.data.id
}

output "data_bucket_arn" {
  description = "ARN of the data bucket."
  value       = aws_s3_bucket.data.arn
}

output "queue_url" {
  description = "URL of the S3 event queue the dispatcher consumes."
  value       = aws_sqs_queue.events.id
}

output "queue_arn" {
  description = "ARN of the S3 event queue."
  value       = aws_sqs_queue.events.arn
}

output "queue_name" {
  description = "Name of the S3 event queue."
  value       = aws_sqs_queue.events.name
}

output "dlq_url" {
  description = "URL of the dead-letter queue."
  value       = aws_sqs_queue.dlq.id
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "dlq_name" {
  description = "Name of the dead-letter queue (alarm on its depth)."
  value       = aws_sqs_queue.dlq.name
}

output "dispatcher_function_name" {
  description = "Name of the dispatcher function."
  value       = aws_lambda_function.dispatcher.function_name
}

output "dispatcher_function_arn" {
  description = "ARN of the dispatcher function."
  value       = aws_lambda_function.dispatcher.arn
}

output "job_queue_arn" {
  description = "ARN of the Batch job queue."
  value       = aws_batch_job_queue.this.arn
}

output "job_queue_name" {
  description = "Name of the Batch job queue."
  value       = aws_batch_job_queue.this.name
}

output "job_definition_arn" {
  description = "ARN of the current revision of the worker job definition."
  value       = aws_batch_job_definition.worker.arn
}

output "job_definition_name" {
  description = "Name of the worker job definition (submitting by name uses the latest active revision)."
  value       = aws_batch_job_definition.worker.name
}

output "compute_environment_arn" {
  description = "ARN of the Fargate compute environment."
  value       = aws_batch_compute_environment.fargate.arn
}

output "ecr_repository_url" {
  description = "URL of the worker image repository (null when create_ecr_repository = false)."
  value       = var.create_ecr_repository ? aws_ecr_repository.worker[0].repository_url : null
}

output "worker_image" {
  description = "Image the job definition runs: push the worker image to exactly this URI (`<ecr_repository_url>:<worker_image_tag>` unless worker_image is set)."
  value       = local.worker_image
}

output "worker_image_platform" {
  description = "Platform the worker image must be built for (`docker build --platform`): linux/arm64 or linux/amd64, following architecture (the job definition's Fargate runtimePlatform)."
  value       = local.worker_platform
}

output "worker_image_repository_arn" {
  description = "ECR repository the task execution role may pull the worker image from (the module's, or a brought private ECR image's); null for a public image."
  value       = local.worker_repository_arn
}

output "batch_service_role_arn" {
  description = "ARN of the explicit Batch service role (create_batch_service_role); null when the compute environment uses AWS Batch's service-linked role AWSServiceRoleForBatch."
  value       = var.create_batch_service_role ? aws_iam_role.batch_service[0].arn : null
}

output "job_role_arn" {
  description = "ARN of the worker's job role."
  value       = aws_iam_role.job.arn
}

output "log_group_names" {
  description = "Log groups of the module by purpose: dispatcher and worker."
  value       = local.log_group_names
}

output "telemetry" {
  description = "Namespace and `service` dimensions of the dispatcher's and the worker's EMF metrics: pass to modules/observability (`batch_metrics`, `metric_namespace`)."
  value       = var.telemetry
}
