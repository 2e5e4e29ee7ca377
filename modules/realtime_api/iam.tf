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
  statement {
    sid       = "ReadModelBundle"
    actions   = ["s3:GetObject"]
    resources = ["${var.model_bucket_arn}/${local.model_prefix}*"]
  }

  # Listing the prefix lets a missing object surface as 404 instead of 403.
  statement {
    sid       = "ListModelPrefix"
    actions   = ["s3:ListBucket"]
    resources = [var.model_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.model_prefix}*"]
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

# ENI management for a function in a VPC (ec2:CreateNetworkInterface etc. accept only "*").
resource "aws_iam_role_policy_attachment" "vpc_access" {
  count = local.enable_vpc ? 1 : 0

  role       = aws_iam_role.function.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}
