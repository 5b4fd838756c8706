"""ForesightKV's exported KV-cache eviction scorer in HF transformers (DESIGN.md §2, §4, §10)."""
from .cache import ForesightCache, generate, top_w
from .export import ExportError, Scorer, check_schedule, load_scorer, model_fingerprint

__version__ = "0.1.0"
__all__ = ["ForesightCache", "generate", "load_scorer", "Scorer", "ExportError", "model_fingerprint",
           "check_schedule", "top_w"]
