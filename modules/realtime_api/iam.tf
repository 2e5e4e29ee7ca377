###############################################################################
# Execution role of the function (least privilege)
###############################################################################

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    sid     = "LambdaAssume"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  name               = local.function_name
  description        = "Execution role of ${local.function_name}"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = var.tags
}

data "aws_iam_policy_document" "function" {
  # The primary's bundle, and during a canary the candidate's (same bucket, checked by
  # var.canary's validation): one role serves both versions of the function.
  statement {
    sid       = "ReadModelBundle"
    actions   = ["s3:GetObject"]
    resources = [for p in local.model_prefixes : "${var.model_bucket_arn}/${p}*"]
  }

  # Listing the prefix lets a missing object surface as 404 instead of 403.
  statement {
    sid       = "ListModelPrefix"
    actions   = ["s3:ListBucket"]
    resources = [var.model_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for p in local.model_prefixes : "${p}*"]
    }
  }

  statement {
    sid       = "DecryptModelViaS3"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${data.aws_region.current.name}.amazonaws.com"]
    }
  }

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function.arn}:*"]
  }

  dynamic "statement" {
    for_each = var.enable_xray_tracing ? [1] : []
    content {
      # X-Ray has no resource-level permissions: these actions only accept "*".
      sid = "XRayWrite"
      actions = [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
      ]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "function" {
  name   = "inferstack-predict"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.function.json
}

# ENI management for a function in a VPC, instead of the AWS managed
# AWSLambdaVPCAccessExecutionRole (log writes and ec2 actions on "*"). Lambda uses
# these permissions of the execution role to create and delete the function's
# network interfaces (https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html#configuration-vpc-permissions);
# the function's own code never calls EC2.
data "aws_iam_policy_document" "vpc_access" {
  count = local.enable_vpc ? 1 : 0

  # Describe* have no resource-level permissions: "*" only.
  statement {
    sid       = "DescribeNetwork"
    actions   = ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"]
    resources = ["*"]
  }

  # New interfaces only in the function's subnets, with its security groups.
  statement {
    sid     = "CreateInterfaceInOwnSubnets"
    actions = ["ec2:CreateNetworkInterface"]
    resources = concat(
      ["${local.ec2_arn}:network-interface/*"],
      [for id in var.subnet_ids : "${local.ec2_arn}:subnet/${id}"],
      [for id in var.security_group_ids : "${local.ec2_arn}:security-group/${id}"],
    )
  }

  # Interfaces are created by Lambda, so their IDs are unknown here: every
  # interface of this account and region (what the Lambda guide asks for
  # DeleteNetworkInterface), not "*".
  statement {
    sid = "ManageInterfaces"
    actions = [
      "ec2:DeleteNetworkInterface",
      "ec2:AssignPrivateIpAddresses",
      "ec2:UnassignPrivateIpAddresses",
    ]
    resources = ["${local.ec2_arn}:network-interface/*"]
  }
}

resource "aws_iam_role_policy" "vpc_access" {
  count = local.enable_vpc ? 1 : 0

  name   = "inferstack-predict-vpc-access"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.vpc_access[0].json
}
