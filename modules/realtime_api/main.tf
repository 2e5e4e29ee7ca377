data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  function_name = "${var.name_prefix}-predict"
  api_name      = "${var.name_prefix}-api"

  # s3://bucket/prefix/ -> "bucket" and "prefix/" ("" for the bucket root).
  model_bucket = split("/", trimprefix(var.model_uri, "s3://"))[0]
  model_prefix = trimprefix(trimprefix(var.model_uri, "s3://"), "${local.model_bucket}/")
  model_prefixes = distinct(concat(
    [local.model_prefix],
    var.canary == null ? [] : [trimprefix(trimprefix(var.canary.model_uri, "s3://"), "${local.model_bucket}/")],
  ))

  # Canary rollout: the function's configuration carries the candidate's model, the alias keeps
  # serving the primary version by number and sends var.canary.weight of requests to the candidate.
  canary_enabled = var.canary != null
  latest_model = local.canary_enabled ? {
    uri    = var.canary.model_uri
    sha256 = var.canary.model_sha256 == null ? null : lower(var.canary.model_sha256)
    } : {
    uri    = var.model_uri
    sha256 = var.model_sha256 == null ? null : lower(var.model_sha256)
  }
  primary_env = local.canary_enabled ? try(data.aws_lambda_function.primary[0].environment[0].variables, {}) : {}
  primary_serves_model_uri = local.canary_enabled && try(
    local.primary_env.MODEL_URI == var.model_uri && lookup(local.primary_env, "MODEL_SHA256", "") == (var.model_sha256 == null ? "" : lower(var.model_sha256)),
    false,
  )
  primary_version = local.canary_enabled ? data.aws_lambda_alias.current[0].function_version : aws_lambda_function.this.version

  create_layer = var.layer_zip_path != null
  layer_arn    = local.create_layer ? aws_lambda_layer_version.runtime[0].arn : var.layer_arn

  enable_vpc = length(var.subnet_ids) > 0
  ec2_arn    = "arn:${data.aws_partition.current.partition}:ec2:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}"

  # One list for API Gateway (binary media types) and the function (BINARY_MEDIA_TYPES):
  # a type the handler accepts but the API does not encode would reach it mangled.
  binary_media_types_env = join(",", var.api.binary_media_types)
  waf_logging            = var.enable_waf && var.waf.enable_logging

  log_group_names = merge(
    {
      function   = aws_cloudwatch_log_group.function.name
      api_access = aws_cloudwatch_log_group.api_access.name
    },
    var.api.logging_level == "OFF" ? {} : { api_execution = aws_cloudwatch_log_group.api_execution[0].name },
    local.waf_logging ? { waf = aws_cloudwatch_log_group.waf[0].name } : {},
  )
}
