# Read by the local runner and the integration tests with `terraform output -json`.

output "api_url" {
  description = "URL of POST /predict."
  value       = module.realtime_api.predict_url
}

output "api_id" {
  description = "Id of the REST API."
  value       = module.realtime_api.api_id
}

output "stage_name" {
  description = "Stage of the REST API."
  value       = module.realtime_api.stage_name
}

output "api_key_id" {
  description = "Id of the API key (send its value in the x-api-key header)."
  value       = module.realtime_api.api_key_id
}

output "api_key_value" {
  description = "Value of the API key (x-api-key header); null with api.api_key_required = false."
  value       = module.realtime_api.api_key_value
  sensitive   = true
}

output "execute_api_arn" {
  description = "ARN of POST /predict: with api.authorization = \"AWS_IAM\", callers need execute-api:Invoke on it and sign requests with SigV4 for service execute-api in var.region."
  value       = module.realtime_api.execute_api_arn
}

output "region" {
  description = "AWS region of the stack."
  value       = var.region
}

output "model_bucket" {
  description = "Bucket holding the model bundles."
  value       = module.model_store.bucket_name
}

output "model_uri" {
  description = "S3 URI of the deployed model bundle."
  value       = module.model_store.model_uri
}

output "model" {
  description = "Name, version and sha256 of the deployed model."
  value = {
    name    = module.model_store.model_name
    version = module.model_store.model_version
    sha256  = module.model_store.model_sha256
  }
}

output "canary" {
  description = "The canary rollout: the candidate model (uri, name, version, sha256), its weight, and the predict function's primary and candidate versions behind the live alias. Null without a canary."
  value = var.canary == null ? null : {
    model_uri         = module.model_store.candidate.uri
    name              = module.model_store.candidate.name
    version           = module.model_store.candidate.version
    sha256            = module.model_store.candidate.sha256
    weight            = var.canary.weight
    primary_version   = module.realtime_api.primary_version
    candidate_version = module.realtime_api.candidate_version
  }
}

output "kms_key_arn" {
  description = "KMS key encrypting the stack's buckets, logs, queues and alarm topic."
  value       = module.model_store.kms_key_arn
}

output "data_bucket" {
  description = "Batch data bucket: upload images under input/, read results under output/."
  value       = module.batch.data_bucket_name
}

output "queue_url" {
  description = "SQS queue of S3 events feeding the dispatcher."
  value       = module.batch.queue_url
}

output "dlq_url" {
  description = "Dead-letter queue of the S3 event queue."
  value       = module.batch.dlq_url
}

output "predict_function_name" {
  description = "Name of the real-time Lambda function."
  value       = module.realtime_api.function_name
}

output "dispatcher_function_name" {
  description = "Name of the batch dispatcher Lambda function."
  value       = module.batch.dispatcher_function_name
}

output "job_queue" {
  description = "Name of the AWS Batch job queue."
  value       = module.batch.job_queue_name
}

output "job_definition" {
  description = "Name of the AWS Batch job definition."
  value       = module.batch.job_definition_name
}

output "ecr_repository_url" {
  description = "ECR repository of the batch worker image."
  value       = module.batch.ecr_repository_url
}

output "worker_image" {
  description = "The image the Batch job definition runs: build and push the worker image to exactly this URI."
  value       = module.batch.worker_image
}

output "worker_image_platform" {
  description = "`docker build --platform` of the worker image: linux/arm64 or linux/amd64, as the job definition's Fargate runtime platform (var.architecture) requires."
  value       = module.batch.worker_image_platform
}

output "worker_image_push_commands" {
  description = "Shell commands, run from the repository root, that log in to the stack's ECR registry, build the worker image for worker_image_platform and push it as worker_image. Null when batch.worker_image names an image you push yourself."
  value = var.batch.worker_image != null ? null : join("\n", [
    "aws ecr get-login-password --region ${var.region} | docker login --username AWS --password-stdin ${split("/", module.batch.worker_image)[0]}",
    "docker build --platform ${module.batch.worker_image_platform} -f functions/inferstack_worker/Dockerfile -t ${module.batch.worker_image} .",
    "docker push ${module.batch.worker_image}",
  ])
}

output "vpc_id" {
  description = "VPC the functions and jobs run in."
  value       = module.network.vpc_id
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the stack."
  value       = module.observability.dashboard_name
}

output "sns_topic_arn" {
  description = "SNS topic receiving the alarms."
  value       = module.observability.sns_topic_arn
}

output "availability_zone_ids" {
  description = "Zone IDs of the private subnets (copy into network.availability_zone_ids to keep them where they are)."
  value       = module.network.availability_zone_ids
}
