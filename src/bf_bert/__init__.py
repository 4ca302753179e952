"""bf_bert: the workflows researchers run on BF BERT — fill-mask, explanations, the `bf-bert` CLI.

The models themselves live in the transformers overlay (`from transformers import BFBertForMaskedLM`);
this package is what is built on top of them.
"""
