source_hash = "f4a0f4bb408d0fda91370e8cd40887abc6951f4e5d4d67f44768d2a80c0e6a18"
cuda_built = True
native_arch = True
