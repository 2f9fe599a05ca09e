// Command etcd is the upstream etcd server, linked from the go.etcd.io/etcd/server/v3 module.
// build.sh copies this file into a module it creates under the cache directory.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
