source_hash = "6e16fa73c948cb85b904f62a7b644400fec91630fbd89b8036c2ebf06f9c8b8f"
cuda_built = True
native_arch = True
