source_hash = "e7cea903c35ce75367cf53adc729c2865bd8e36ccf6008381997ce5d93c352d1"
cuda_built = True
native_arch = True
