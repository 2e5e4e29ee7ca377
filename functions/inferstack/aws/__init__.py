"""Tools that look at a real AWS account: ``inferstack aws preflight``.

``settings`` reads what the root stack will deploy (tfvars over the Terraform defaults),
``preflight`` checks the account against it, read-only, with the caller's credentials.
"""
