"""Inference: the model runner threads, the dynamic batcher for searches and values, and the
search slots' CUDA graphs."""
from ezero_async.inference.runner import ModelRunner
from ezero_async.inference.search_service import RootResult, SearchResult, SearchService

__all__ = ["ModelRunner", "RootResult", "SearchResult", "SearchService"]
