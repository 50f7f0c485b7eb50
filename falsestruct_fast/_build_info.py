source_hash = "5c685a3cda85acf5a82ee99b892a15bc8ec2f5283cc4d9312af7219eeee03975"
cuda_built = True
native_arch = True
