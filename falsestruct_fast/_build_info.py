source_hash = "386f014e4fce5a0edd26318d92f310c5fba142391a1ab77332fc5920a7c71edc"
cuda_built = True
native_arch = True
