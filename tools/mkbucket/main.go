// Command mkbucket creates an S3 bucket unless it exists, retrying until the
// server answers: the one-shot step that readies MinIO for Vigil in
// docker-compose.yml.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func main() {
	endpoint := flag.String("endpoint", "minio:9000", "S3 endpoint (host:port).")
	name := flag.String("bucket", "vigil", "Bucket to create.")
	insecure := flag.Bool("insecure", true, "Use plain HTTP.")
	wait := flag.Duration("wait", 2*time.Minute, "How long to retry while the server does not answer.")
	flag.Parse()
	c, err := minio.New(*endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), ""),
		Secure: !*insecure,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	deadline := time.Now().Add(*wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		exists, err := c.BucketExists(ctx, *name)
		if err == nil && !exists {
			err = c.MakeBucket(ctx, *name, minio.MakeBucketOptions{})
		}
		cancel()
		if err == nil {
			fmt.Printf("bucket %s is ready on %s\n", *name, *endpoint)
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "bucket %s: %v\n", *name, err)
			os.Exit(1)
		}
		time.Sleep(time.Second)
	}
}
