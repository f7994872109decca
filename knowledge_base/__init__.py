"""Knowledge base (知识库): versioned entries, hybrid retrieval (FAISS + BM25), editors' services."""
