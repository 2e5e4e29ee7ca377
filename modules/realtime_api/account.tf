###############################################################################
# API Gateway account settings (create_api_gateway_account): the CloudWatch role
#
# One setting per account and region, shared by every REST API there: API
# Gateway assumes this role to write access and execution logs. A stage with
# logging cannot be created before it is set, so the stage depends on it.
###############################################################################

data "aws_iam_policy_document" "assume_apigateway" {
  count = var.create_api_gateway_account ? 1 : 0

  statement {
    sid     = "ApiGatewayAssume"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["apigateway.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "apigateway_cloudwatch" {
  count = var.create_api_gateway_account ? 1 : 0

  name               = "${local.api_name}-cloudwatch-${data.aws_region.current.name}"
  description        = "API Gateway account CloudWatch Logs role (account-wide setting of ${data.aws_region.current.name})"
  assume_role_policy = data.aws_iam_policy_document.assume_apigateway[0].json
  tags               = var.tags
}

# The policy AWS documents for this role: API Gateway creates the execution log
# groups of every API in the region itself, so it cannot be scoped to this stack.
resource "aws_iam_role_policy_attachment" "apigateway_cloudwatch" {
  count = var.create_api_gateway_account ? 1 : 0

  role       = aws_iam_role.apigateway_cloudwatch[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
}

resource "aws_api_gateway_account" "this" {
  count = var.create_api_gateway_account ? 1 : 0

  cloudwatch_role_arn = aws_iam_role.apigateway_cloudwatch[0].arn
  # On destroy, clear the setting instead of leaving it on a role that no longer
  # exists (the provider marks the argument deprecated for its next major version).
  reset_on_delete = true

  depends_on = [aws_iam_role_policy_attachment.apigateway_cloudwatch]
}
