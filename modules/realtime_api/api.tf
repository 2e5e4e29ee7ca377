###############################################################################
# API Gateway REST API: POST /predict -> Lambda alias (proxy), API key + usage
# plan and/or IAM (SigV4) authorization
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
  authorization        = var.api.authorization
  api_key_required     = var.api.api_key_required
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

# Execution logs: API Gateway writes them to this name; created here for retention and KMS.
resource "aws_cloudwatch_log_group" "api_execution" {
  count = var.api.logging_level == "OFF" ? 0 : 1

  name              = "API-Gateway-Execution-Logs_${aws_api_gateway_rest_api.this.id}/${var.api.stage_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_api_gateway_stage" "this" {
  #checkov:skip=CKV_AWS_120:POST /predict responses are per-image and never cached; a cache cluster would only cost money.
  #checkov:skip=CKV2_AWS_51:Client certificates authenticate API Gateway to HTTP backends; the only backend is a Lambda proxy integration.
  #checkov:skip=CKV2_AWS_4:Execution logging is on at ERROR and method metrics are on by default (api.logging_level, api.metrics_enabled; asserted by the "defaults" run of tests/realtime_api.tftest.hcl); checkov cannot read values from an object variable's optional() defaults. The account CloudWatch role it needs is set with create_api_gateway_account.
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
      userArn            = "$context.identity.userArn"
    })
  }

  tags = var.tags

  # Logging needs the account's CloudWatch role (set here with create_api_gateway_account).
  depends_on = [aws_api_gateway_account.this]
}

resource "aws_api_gateway_method_settings" "all" {
  #checkov:skip=CKV_AWS_225:POST /predict responses are per-image and never cached.
  rest_api_id = aws_api_gateway_rest_api.this.id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = "*/*"

  settings {
    metrics_enabled = var.api.metrics_enabled
    # ERROR by default: the module creates the log group, and the account role
    # that access logging needs serves execution logging too.
    logging_level          = var.api.logging_level
    data_trace_enabled     = false
    throttling_rate_limit  = var.api.throttling_rate_limit
    throttling_burst_limit = var.api.throttling_burst_limit
    caching_enabled        = false
    cache_data_encrypted   = true
  }

  depends_on = [aws_cloudwatch_log_group.api_execution]
}

# API key and usage plan: only where the method requires a key (api.api_key_required).
resource "aws_api_gateway_api_key" "this" {
  count = var.api.api_key_required ? 1 : 0

  name        = "${local.api_name}-default"
  description = "Default key of ${local.api_name}"
  enabled     = true
  tags        = var.tags
}

resource "aws_api_gateway_usage_plan" "this" {
  count = var.api.api_key_required ? 1 : 0

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
  count = var.api.api_key_required ? 1 : 0

  key_id        = aws_api_gateway_api_key.this[0].id
  key_type      = "API_KEY"
  usage_plan_id = aws_api_gateway_usage_plan.this[0].id
}

moved {
  from = aws_api_gateway_api_key.this
  to   = aws_api_gateway_api_key.this[0]
}

moved {
  from = aws_api_gateway_usage_plan.this
  to   = aws_api_gateway_usage_plan.this[0]
}

moved {
  from = aws_api_gateway_usage_plan_key.this
  to   = aws_api_gateway_usage_plan_key.this[0]
}
