source_hash = "21013722db5ae83011231066467e2afd01f3286729b0c8252405c50f4c1731ac"
cuda_built = True
native_arch = True
