source_hash = "ac09b8f20c48c792b5fc9ab46c282f6cc2cceeef7d353b6e7c004155212a2ba2"
cuda_built = True
native_arch = True
