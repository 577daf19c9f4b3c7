"""PACS networking (Qt-free): nodes, DIMSE query/retrieve, retrieval into the study database."""
