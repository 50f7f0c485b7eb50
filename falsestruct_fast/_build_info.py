source_hash = "4bfb9f366fef44061ab2644e308157a07e468dcef40977260a13325be0f777c1"
cuda_built = True
native_arch = True
