"""Offline evaluation of the language models on real labelled public data (``social311 eval``).

``datasets`` reads the shared corpora, ``cache`` keeps their embeddings on disk, ``classifiers``
holds the models compared (TF-IDF baseline, embeddings, both stacked, zero-shot seeds),
``speed`` measures the embedding paths and the prefilter, ``merging`` scores incident merging,
``runner`` puts them into one table, ``lodo`` holds each shared set out in turn
(``--task lodo``) and ``learning`` draws F1 against reviewed labels (``--task learning``).
"""
