source_hash = "4f0276615e0ccadae825f774abe4420685937f0bf2c299104b871ee412c4d908"
cuda_built = True
native_arch = True
