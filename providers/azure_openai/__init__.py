"""Azure OpenAI fine-tuning: OpenAI's files and fine_tuning.jobs API on an Azure resource, through the
`openai` SDK's AzureOpenAI client, and a deployment per fine-tuned model through the management API.

    adapter.py      the Provider: the OpenAI adapter, subclassed, with Azure's client, auth, dates and serving
    deployments.py  ServesModels: PUT/GET/DELETE .../accounts/{account}/deployments/{name}
    catalog.yaml    the fine-tunable models, Azure's retirement dates and hosting, with sources

Importing this package imports no SDK; the registry (providers/__init__.py) loads the adapter by name.
"""
