source_hash = "0277245d53dd249e41aa61543e23d2e8009e1e2e44a17fe2d7cf264b94e47457"
cuda_built = True
native_arch = True
