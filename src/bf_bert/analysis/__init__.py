"""The subject–verb agreement analysis of Du et al. (ACL 2023, §5.2), run over whole datasets.

What a dataset reads into (`items`) and the readers that read it (`readers`).
"""

from .items import MASK, Item, ReadResult, Skipped
from .readers import FORMATS, detect_format, grammar_items, read_items, write_grammar_dataset

__all__ = ["FORMATS", "MASK", "Item", "ReadResult", "Skipped", "detect_format", "grammar_items", "read_items",
           "write_grammar_dataset"]
