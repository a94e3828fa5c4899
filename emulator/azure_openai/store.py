"""What the emulator keeps for Azure OpenAI: the OpenAI store's files and jobs (the same API on Azure), plus
the account's model deployments, which are what chat completions address on Azure.

A deployment is made by the management API (api.py), is `Creating` for a moment and then `Succeeded`, and
serves the model it names: a fine-tuned model a job of this store produced, or a base model. A chat
completion names a deployment; a base model is also answered under its own name (as if deployed so).
Saved as the `azure_openai` section of state.json.
"""

from __future__ import annotations

from typing import Any

from emulator.openai.store import OpenAIStore
from emulator.state import EmulatorState, Imitation
from emulator.wire import ApiError
from providers.catalog import model_facts

SKUS = {"standard": "Standard", "globalstandard": "GlobalStandard", "developertier": "DeveloperTier",
        "provisionedmanaged": "ProvisionedManaged"}


def azure_store(state: EmulatorState) -> AzureStore:
    """The Azure OpenAI store of `state`, made (and given its saved section) on first use."""
    return state.store("azure_openai", AzureStore)


class AzureStore(OpenAIStore):
    def __init__(self, state: EmulatorState) -> None:
        super().__init__(state)
        self._deployments: dict[str, dict[str, Any]] = {}

    # -- deployments (the management API) --------------------------------------------------------

    def deploy(self, name: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create or update the deployment `name` (ARM's PUT); (its record, whether it was new)."""
        sku, model = body.get("sku") or {}, ((body.get("properties") or {}).get("model") or {})
        sku_name = SKUS.get(str(sku.get("name", "")).lower())
        if sku_name is None:
            raise ApiError(400, f"The specified SKU '{sku.get('name')}' is not supported; allowed: "
                                f"{', '.join(SKUS.values())}.", code="InvalidResourceProperties")
        model_name = model.get("name")
        if (model.get("format") != "OpenAI" or not isinstance(model_name, str)
                or not self._deployable(model_name)):
            raise ApiError(400, f"The model '{model_name}' of format '{model.get('format')}' cannot be "
                                "deployed on this account.", code="DeploymentModelNotSupported")
        with self.state.lock:
            new = name not in self._deployments
            self._deployments[name] = {"model": model_name, "sku": sku_name,
                                       "capacity": int(sku.get("capacity") or 1),
                                       "created_at": self.state.now() if new else
                                       self._deployments[name]["created_at"]}
            self.state.save()
            return self._deployments[name], new

    def deployment(self, name: str) -> dict[str, Any] | None:
        with self.state.lock:
            return self._deployments.get(name)

    def provisioning_state(self, record: dict[str, Any]) -> str:
        ready = record["created_at"] + self.state.file_processing_s
        return "Creating" if self.state.now() < ready else "Succeeded"

    def undeploy(self, name: str) -> bool:
        with self.state.lock:
            gone = self._deployments.pop(name, None) is not None
            if gone:
                self.state.save()
            return gone

    def _deployable(self, model: str) -> bool:
        return self._job_for_model(model) is not None or model_facts("azure_openai", model) is not None

    # -- inference -------------------------------------------------------------------------------

    def imitation(self, model: str) -> Imitation:
        """`model` names a deployment (Azure's chat completions address deployments): it answers like the
        model it serves once it has succeeded; a base model also answers under its own name."""
        record = self.deployment(model)
        if record is not None:
            if self.provisioning_state(record) != "Succeeded":
                raise ApiError(404, f"The API deployment {model} is not ready yet.",
                               code="DeploymentNotFound")
            model = record["model"]
        elif model.startswith("ft:") or model_facts("azure_openai", model) is None:
            raise ApiError(404, "The API deployment for this resource does not exist. If you created the "
                                "deployment within the last 5 minutes, please wait a moment and try again.",
                           code="DeploymentNotFound")
        # cached apart from the OpenAI routes' imitations: a tuned model of one API is unknown to the other
        return self.state.imitation("azure_openai", model, lambda: self._imitation(model))

    # -- persistence -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "deployments": self._deployments}

    def load(self, section: dict[str, Any] | None) -> None:
        super().load(section)
        self._deployments = dict((section or {}).get("deployments") or {})
