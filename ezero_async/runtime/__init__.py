"""The asyncio runtime: self-play actors, reanalysis workers, the pacer, evaluation, the trainer."""
