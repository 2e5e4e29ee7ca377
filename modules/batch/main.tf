data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id

  bucket_name     = coalesce(var.data_bucket.name, "${var.name_prefix}-data-${local.account_id}")
  dispatcher_name = "${var.name_prefix}-dispatcher"
  worker_name     = "${var.name_prefix}-worker"

  input_prefix    = "input/"
  output_prefix   = "output/"
  manifest_prefix = "manifests/"
  image_suffixes  = ".jpg,.jpeg,.png,.webp,.bmp,.gif"

  # s3://bucket/prefix/ -> "bucket" and "prefix/" ("" for the bucket root).
  model_bucket = split("/", trimprefix(var.model_uri, "s3://"))[0]
  model_prefix = trimprefix(trimprefix(var.model_uri, "s3://"), "${local.model_bucket}/")

  worker_image = coalesce(var.worker_image, try("${aws_ecr_repository.worker[0].repository_url}:latest", null))

  queue_visibility_timeout = coalesce(var.queue.visibility_timeout_seconds, 6 * var.dispatcher.timeout)

  powertools = {
    POWERTOOLS_METRICS_NAMESPACE = "Inferstack"
  }

  log_group_names = {
    dispatcher = aws_cloudwatch_log_group.dispatcher.name
    worker     = aws_cloudwatch_log_group.worker.name
  }
}
