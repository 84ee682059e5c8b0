"""The generative slate model over Semantic IDs: model, training, recommender."""
