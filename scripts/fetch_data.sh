#!/usr/bin/env bash
# Downloads the full datasets the README's image examples use into data/ (git-ignored):
#   data/mnist/          MNIST IDX files (train + t10k images and labels)
#   data/fashion-mnist/  Fashion-MNIST IDX files
#   data/cifar-10-batches-bin/   CIFAR-10 binary batches
#
#   scripts/fetch_data.sh [mnist] [fashion-mnist] [cifar10]     # default: all three
# The repo itself ships data/mnist-subset (4000 MNIST digits), which the demo and the tests use.
set -euo pipefail
cd "$(dirname "$0")/.."
get() {  # get URL FILE
  [ -s "$2" ] && return 0
  echo "fetching $1"
  curl -fL --retry 3 -o "$2.part" "$1" && mv "$2.part" "$2"
}
idx() {  # idx BASE_URL FOLDER
  mkdir -p "$2"
  for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    get "$1/$f.gz" "$2/$f.gz"
  done
}
for what in "${@:-mnist fashion-mnist cifar10}"; do
  for w in $what; do
    case $w in
      mnist) idx https://ossci-datasets.s3.amazonaws.com/mnist data/mnist ;;
      fashion-mnist) idx http://fashion-mnist.s3-website.eu-central-1.amazonaws.com data/fashion-mnist ;;
      cifar10)
        get https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz data/cifar-10-binary.tar.gz
        tar xzf data/cifar-10-binary.tar.gz -C data ;;
      *) echo "error: unknown dataset '$w' (mnist, fashion-mnist, cifar10)" >&2; exit 2 ;;
    esac
  done
done
