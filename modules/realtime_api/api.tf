###############################################################################
# API Gateway REST API: POST /predict -> Lambda alias (proxy), API key + usage plan
###############################################################################

resource "aws_api_gateway_rest_api" "this" {
  name               = local.api_name
  description        = "inferstack real-time image classification"
  binary_media_types = var.api.binary_media_types

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_resource" "predict" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = "predict"
}

# The function needs Content-Type to tell a raw image from a JSON body (and API
# Gateway needs it to pass binary bodies base64-encoded): without it the request
# is refused with 400 before it reaches the function.
resource "aws_api_gateway_request_validator" "parameters" {
  rest_api_id                 = aws_api_gateway_rest_api.this.id
  name                        = "parameters"
  validate_request_parameters = true
  validate_request_body       = false
}

resource "aws_api_gateway_method" "predict" {
  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = aws_api_gateway_resource.predict.id
  http_method          = "POST"
  authorization        = "NONE"
  api_key_required     = true
  request_validator_id = aws_api_gateway_request_validator.parameters.id

  request_parameters = {
    "method.request.header.Content-Type" = true
    "method.request.querystring.top_k"   = false
  }
}

resource "aws_api_gateway_integration" "predict" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.predict.id
  http_method             = aws_api_gateway_method.predict.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_alias.live.invoke_arn
}

resource "aws_api_gateway_deployment" "this" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  description = "inferstack ${var.api.stage_name}"

  # A new deployment whenever anything the stage serves changes.
  triggers = {
    redeployment = sha1(jsonencode([
      # The configured list, not the API's attribute: known at plan time.
      var.api.binary_media_types,
      aws_api_gateway_resource.predict.id,
      aws_api_gateway_method.predict.id,
      aws_api_gateway_method.predict.api_key_required,
      aws_api_gateway_method.predict.authorization,
      aws_api_gateway_method.predict.request_parameters,
      aws_api_gateway_request_validator.parameters.id,
      aws_api_gateway_integration.predict.id,
      aws_api_gateway_integration.predict.uri,
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [aws_api_gateway_integration.predict]
}

resource "aws_cloudwatch_log_group" "api_access" {
  name              = "/aws/apigateway/${local.api_name}/${var.api.stage_name}/access"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_api_gateway_stage" "this" {
  #checkov:skip=CKV_AWS_120:POST /predict responses are per-image and never cached; a cache cluster would only cost money.
  #checkov:skip=CKV2_AWS_51:Client certificates authenticate API Gateway to HTTP backends; the only backend is a Lambda proxy integration.
  #checkov:skip=CKV2_AWS_4:Execution logging needs the region-wide API Gateway CloudWatch role (account setting outside this module); set api.logging_level once it exists. JSON access logs are always on.
  rest_api_id          = aws_api_gateway_rest_api.this.id
  deployment_id        = aws_api_gateway_deployment.this.id
  stage_name           = var.api.stage_name
  description          = "inferstack ${var.api.stage_name}"
  xray_tracing_enabled = var.enable_xray_tracing

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      extendedRequestId  = "$context.extendedRequestId"
      requestTime        = "$context.requestTime"
      ip                 = "$context.identity.sourceIp"
      userAgent          = "$context.identity.userAgent"
      apiKeyId           = "$context.identity.apiKeyId"
      httpMethod         = "$context.httpMethod"
      resourcePath       = "$context.resourcePath"
      protocol           = "$context.protocol"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      responseLatency    = "$context.responseLatency"
      integrationStatus  = "$context.integration.status"
      integrationLatency = "$context.integration.latency"
      integrationError   = "$context.integration.error"
      errorMessage       = "$context.error.message"
      errorType          = "$context.error.responseType"
      wafStatus          = "$context.waf.status"
      xrayTraceId        = "$context.xrayTraceId"
    })
  }

  tags = var.tags
}

resource "aws_api_gateway_method_settings" "all" {
  #checkov:skip=CKV_AWS_225:POST /predict responses are per-image and never cached.
  rest_api_id = aws_api_gateway_rest_api.this.id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = "*/*"

  settings {
    metrics_enabled        = var.api.metrics_enabled
    logging_level          = var.api.logging_level
    data_trace_enabled     = false
    throttling_rate_limit  = var.api.throttling_rate_limit
    throttling_burst_limit = var.api.throttling_burst_limit
    caching_enabled        = false
    cache_data_encrypted   = true
  }
}

resource "aws_api_gateway_api_key" "this" {
  name        = "${local.api_name}-default"
  description = "Default key of ${local.api_name}"
  enabled     = true
  tags        = var.tags
}

resource "aws_api_gateway_usage_plan" "this" {
  name        = "${local.api_name}-default"
  description = "Throttling and quota per API key"

  api_stages {
    api_id = aws_api_gateway_rest_api.this.id
    stage  = aws_api_gateway_stage.this.stage_name
  }

  throttle_settings {
    rate_limit  = coalesce(var.api.key_rate_limit, var.api.throttling_rate_limit)
    burst_limit = coalesce(var.api.key_burst_limit, var.api.throttling_burst_limit)
  }

  dynamic "quota_settings" {
    for_each = var.api.quota_limit > 0 ? [1] : []
    content {
      limit  = var.api.quota_limit
      period = var.api.quota_period
    }
  }

  tags = var.tags
}

resource "aws_api_gateway_usage_plan_key" "this" {
  key_id        = aws_api_gateway_api_key.this.id
  key_type      = "API_KEY"
  usage_plan_id = aws_api_gateway_usage_plan.this.id
}
