source_hash = "a00c7f847c66c487de1c30c50a7c4aa7b16fb86511525fa73535e2f7ab2cc9c0"
cuda_built = True
native_arch = True
