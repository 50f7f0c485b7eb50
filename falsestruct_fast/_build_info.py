source_hash = "00a1c571619d6c0c83adc75c2b9b65692f8645b95a0d51787648d62e9d830bf5"
cuda_built = True
native_arch = True
