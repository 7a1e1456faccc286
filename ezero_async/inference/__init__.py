"""Inference: the model runner thread and the dynamic batcher for searches and values."""
from ezero_async.inference.runner import ModelRunner
from ezero_async.inference.search_service import RootResult, SearchResult, SearchService

__all__ = ["ModelRunner", "RootResult", "SearchResult", "SearchService"]
