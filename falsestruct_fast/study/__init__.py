"""Seed studies: run every (setting, seed) of a grid, persist the rows, summarise them.

>>> import falsestruct_fast as fs
>>> report = fs.study.run(fs.experiments.preset("psi3", epochs=20), seeds=range(1000),
...                       store="results.sqlite")          # doctest: +SKIP
>>> print(fs.study.format_summary(fs.study.summarize("results.sqlite")))   # doctest: +SKIP
"""
from .grid import grid, load_toml
from .runner import StudyReport, run, run_chunk, setting_from_dict
from .store import COLUMN_NAMES, Store, StoreError, setting_id
from .summary import SettingSummary, StudySummary, format_summary, plot_summary, summarize, wilson_interval

__all__ = ["run", "run_chunk", "StudyReport", "setting_from_dict", "grid", "load_toml", "Store", "StoreError",
           "setting_id", "COLUMN_NAMES", "summarize", "format_summary", "plot_summary",
           "SettingSummary", "StudySummary", "wilson_interval"]
