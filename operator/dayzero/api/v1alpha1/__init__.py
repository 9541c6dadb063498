"""dayzero.dev/v1alpha1: ModelDeployment, Lane and Gauntlet.

Fields are additive-only within v1alpha1: kopf runs no conversion webhooks.
"""

from .base import API_VERSION, GROUP, VERSION, Condition, Model, SecretKeyRef
from .gauntlet import Gauntlet, GauntletSpec, GauntletStatus
from .lane import Lane, LaneSpec, LaneStatus
from .modeldeployment import ModelDeployment, ModelDeploymentSpec, ModelDeploymentStatus
from .plan import Plan
from .resources import GAUNTLET, LANE, MODEL_DEPLOYMENT, RESOURCES, Resource

__all__ = [
    "API_VERSION",
    "GAUNTLET",
    "GROUP",
    "LANE",
    "MODEL_DEPLOYMENT",
    "RESOURCES",
    "VERSION",
    "Condition",
    "Gauntlet",
    "GauntletSpec",
    "GauntletStatus",
    "Lane",
    "LaneSpec",
    "LaneStatus",
    "Model",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "Plan",
    "Resource",
    "SecretKeyRef",
]
