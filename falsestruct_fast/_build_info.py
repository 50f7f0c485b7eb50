source_hash = "26720d06f47ea3a62563a720ef9e1843a9ebb6b228172d723a06b800e1051735"
cuda_built = True
native_arch = True
