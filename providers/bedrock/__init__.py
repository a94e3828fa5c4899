"""AWS Bedrock model customization: S3 for data, `bedrock` for jobs and serving, `bedrock-runtime` converse.

    adapter.py     the Provider (upload, customization jobs, metrics, converse)
    client.py      its options, the three boto3 clients, and the one translation of boto3's errors
    families.py    the hyperparameters each model family takes, from the catalog's `families`
    metrics.py     the step and validation losses Bedrock writes as CSVs under the job's output
    serving.py     custom-model deployments and provisioned throughput (billed) before inference
    format.py      the Converse and prompt/completion lines Bedrock trains on
    catalog.yaml   model families and models, their limits, prices and end-of-life dates, with sources

Importing this package imports no SDK; the registry (providers/__init__.py) loads the adapter by name.
"""
