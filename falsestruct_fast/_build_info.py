source_hash = "2e3a6c0b55a3f6f2a8b75856b0fce8cf2c8cd40c48e0e72eff0fc56d282f97d8"
cuda_built = True
native_arch = True
