###############################################################################
# Real-time inference function: layer, function, alias, concurrency
###############################################################################

locals {
  # layers/build.py writes beside each layer zip what it was built for (layer-arm64.zip ->
  # layer-arm64.json): the compiled modules in a layer load on one Python and one instruction
  # set only, so a mismatch would deploy and then fail every cold start with an ImportError.
  layer_manifest_path = local.create_layer ? "${trimsuffix(var.layer_zip_path, ".zip")}.json" : null
  layer_manifest      = !local.create_layer ? null : fileexists(local.layer_manifest_path) ? jsondecode(file(local.layer_manifest_path)) : null
}

resource "aws_lambda_layer_version" "runtime" {
  count = local.create_layer ? 1 : 0

  layer_name               = "${var.name_prefix}-runtime-${replace(var.architecture, "_", "-")}"
  description              = "inferstack runtime dependencies (${var.runtime}, ${var.architecture})"
  filename                 = var.layer_zip_path
  source_code_hash         = filebase64sha256(var.layer_zip_path)
  compatible_runtimes      = [var.runtime]
  compatible_architectures = [var.architecture]

  lifecycle {
    precondition {
      condition     = !var.require_layer_manifest || local.layer_manifest != null
      error_message = "The layer ${var.layer_zip_path} has no build manifest beside it (${coalesce(local.layer_manifest_path, "-")}), so what Python it was built for is unknown: rebuild it with layers/build.py (make build)."
    }
    precondition {
      condition     = local.layer_manifest == null || try(local.layer_manifest.runtime, null) == var.runtime
      error_message = "The layer ${var.layer_zip_path} was built for ${try(local.layer_manifest.runtime, "an unrecorded runtime")} (its manifest ${coalesce(local.layer_manifest_path, "-")}), the function runs ${var.runtime}: its compiled modules would not import. Rebuild the layer for ${var.runtime} (make build) or set runtime to the layer's."
    }
    precondition {
      condition     = local.layer_manifest == null || try(local.layer_manifest.architecture, null) == var.architecture
      error_message = "The layer ${var.layer_zip_path} was built for ${try(local.layer_manifest.architecture, "an unrecorded architecture")} (its manifest ${coalesce(local.layer_manifest_path, "-")}), the function runs on ${var.architecture}. Use the layer zip built for ${var.architecture}."
    }
    precondition {
      condition     = local.layer_manifest == null || try(local.layer_manifest.sha256, null) == filesha256(var.layer_zip_path)
      error_message = "The manifest ${coalesce(local.layer_manifest_path, "-")} does not describe ${var.layer_zip_path} (sha256 differs): the zip was replaced without its manifest. Rebuild both with layers/build.py."
    }
  }
}

resource "aws_cloudwatch_log_group" "function" {
  # Lambda writes to /aws/lambda/<function name>; creating it here gives it retention and KMS.
  name              = "/aws/lambda/${local.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously by API Gateway only; a DLQ applies to asynchronous invocations, and errors are returned to the caller.
  #checkov:skip=CKV_AWS_117:The VPC is optional (subnet_ids); with subnet_ids set the function runs in the VPC.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile; the zips are built reproducibly by the project and pinned by source_code_hash.
  function_name = local.function_name
  description   = "inferstack real-time image classification (POST /predict)"
  role          = aws_iam_role.function.arn
  handler       = "inferstack_predict.handler.lambda_handler"
  runtime       = var.runtime
  architectures = [var.architecture]
  memory_size   = var.memory_size
  timeout       = var.timeout

  filename         = var.function_zip_path
  source_code_hash = filebase64sha256(var.function_zip_path)
  layers           = [local.layer_arn]
  publish          = true

  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = merge({
      MODEL_URI                    = local.latest_model.uri
      MODEL_CACHE_DIR              = "/tmp/model"
      MAX_IMAGE_BYTES              = tostring(var.max_image_bytes)
      MAX_IMAGE_PIXELS             = tostring(var.max_image_pixels)
      DEFAULT_TOP_K                = tostring(var.default_top_k)
      BINARY_MEDIA_TYPES           = local.binary_media_types_env
      POWERTOOLS_SERVICE_NAME      = var.telemetry.service
      POWERTOOLS_METRICS_NAMESPACE = var.telemetry.namespace
      LOG_LEVEL                    = var.log_level
      },
      # The model the deployment uploaded: a bundle that declares another one is refused.
      local.latest_model.sha256 == null ? {} : { MODEL_SHA256 = local.latest_model.sha256 },
    )
  }

  tracing_config {
    mode = var.enable_xray_tracing ? "Active" : "PassThrough"
  }

  dynamic "vpc_config" {
    for_each = local.enable_vpc ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }

  tags = var.tags

  depends_on = [
    aws_cloudwatch_log_group.function,
    aws_iam_role_policy.function,
    aws_iam_role_policy.vpc_access,
  ]
}

# A canary rollout (var.canary): the function's configuration ($LATEST) carries the candidate's
# model, so the version published from it is the candidate; the primary is the version the
# alias serves already, read back here and kept by number. Both are published versions with
# their own MODEL_URI and MODEL_SHA256 (versions are immutable snapshots of the configuration).
data "aws_lambda_alias" "current" {
  count = local.canary_enabled ? 1 : 0

  function_name = local.function_name
  name          = "live"
}

data "aws_lambda_function" "primary" {
  count = local.canary_enabled ? 1 : 0

  function_name = local.function_name
  qualifier     = data.aws_lambda_alias.current[0].function_version
}

resource "aws_lambda_alias" "live" {
  name             = "live"
  description      = local.canary_enabled ? "Version served by the API (primary) and the canary candidate" : "Version served by the API"
  function_name    = aws_lambda_function.this.function_name
  function_version = local.primary_version

  dynamic "routing_config" {
    # Weight 0 (a rollback) leaves the candidate published but routes nothing to it.
    for_each = local.canary_enabled && try(var.canary.weight, 0) > 0 ? [1] : []
    content {
      additional_version_weights = { (aws_lambda_function.this.version) = var.canary.weight }
    }
  }

  lifecycle {
    precondition {
      condition     = !local.canary_enabled || local.primary_serves_model_uri
      error_message = "A canary needs the alias to serve the primary model already: version ${try(data.aws_lambda_alias.current[0].function_version, "-")} of ${local.function_name} serves ${try(local.primary_env.MODEL_URI, "-")} (sha256 ${try(local.primary_env.MODEL_SHA256, "-")}), not model_uri ${var.model_uri} (sha256 ${coalesce(var.model_sha256, "-")}). Apply the primary without a canary first, then add the candidate; promote by making the candidate the primary and removing the canary in the same apply."
    }
    precondition {
      condition     = !local.canary_enabled || local.primary_version != aws_lambda_function.this.version
      error_message = "The canary's candidate was published as the version the alias already serves (${local.primary_version}): the candidate's configuration equals the primary's. Give the candidate another model."
    }
  }
}

resource "aws_lambda_provisioned_concurrency_config" "live" {
  count = var.provisioned_concurrency > 0 ? 1 : 0

  # On the alias, so it covers both versions of a weighted alias (see the README).
  function_name                     = aws_lambda_alias.live.function_name
  qualifier                         = aws_lambda_alias.live.name
  provisioned_concurrent_executions = var.provisioned_concurrency
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowApiGatewayPredict"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this.function_name
  qualifier     = aws_lambda_alias.live.name
  principal     = "apigateway.amazonaws.com"
  # The method ARN: this API, this stage, POST /predict only.
  source_arn = "${aws_api_gateway_rest_api.this.execution_arn}/${var.api.stage_name}/${aws_api_gateway_method.predict.http_method}/${aws_api_gateway_resource.predict.path_part}"
}
