// Command probe is the real test node's tool image (kubesweep.local/probe): a static
// binary that lets tests look at a container from the inside without any base image.
//
//	probe echo TEXT...          print TEXT and exit 0
//	probe env NAME...           print NAME=value for each variable (empty if unset)
//	probe hold NAME...          the same, then sleep until SIGTERM (holds its resources)
//	probe connect HOST:PORT     try a TCP connection (5 s timeout); print one word:
//	                            connected | refused | unreachable | timeout | error:<msg>
//	probe whoami                ask the API server through $KUBERNETES_SERVICE_HOST:PORT
//	                            who the pod's ServiceAccount token is (SelfSubjectReview)
//	probe alloc                 allocate and touch memory until the kernel kills it
//	probe serve PORT            answer every HTTP request with "probe $HOSTNAME"
//	probe sleep                 sleep until SIGTERM
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func connect(addr string) string {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	switch {
	case err == nil:
		c.Close()
		return "connected"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return "unreachable"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "error:" + err.Error()
}

func whoami() error {
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		// The API server's certificate names the Service's DNS names and ClusterIP.
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "kubernetes.default.svc"},
	}}
	body := `{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`
	url := fmt.Sprintf("https://%s/apis/authentication.k8s.io/v1/selfsubjectreviews", net.JoinHostPort(host, port))
	req, _ := http.NewRequest("POST", url, bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("%s: HTTP %d: %s", url, resp.StatusCode, data)
	}
	var review struct {
		Status struct {
			UserInfo struct{ Username string } `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal(data, &review); err != nil {
		return err
	}
	fmt.Printf("via %s user %s\n", net.JoinHostPort(host, port), review.Status.UserInfo.Username)
	return nil
}

func alloc() {
	var keep [][]byte
	for {
		b := make([]byte, 16<<20)
		for i := range b {
			b[i] = 1
		}
		keep = append(keep, b)
		fmt.Printf("allocated %d MiB\n", 16*len(keep))
	}
}

func waitForSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe echo|env|hold|connect|whoami|alloc|serve|sleep ...")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "echo":
		fmt.Println(strings.Join(args, " "))
	case "env", "hold":
		for _, n := range args {
			fmt.Printf("%s=%s\n", n, os.Getenv(n))
		}
		if os.Args[1] == "hold" {
			waitForSignal()
		}
	case "connect":
		if len(args) != 1 {
			fmt.Fprintln(os.Stderr, "usage: probe connect HOST:PORT")
			os.Exit(2)
		}
		fmt.Println(connect(args[0]))
	case "whoami":
		if err := whoami(); err != nil {
			fmt.Fprintln(os.Stderr, "whoami:", err)
			os.Exit(1)
		}
	case "alloc":
		alloc()
	case "serve":
		if len(args) != 1 {
			fmt.Fprintln(os.Stderr, "usage: probe serve PORT")
			os.Exit(2)
		}
		host, _ := os.Hostname()
		http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "probe %s\n", host)
		})
		fmt.Println("serving on :" + args[0])
		if err := http.ListenAndServe(":"+args[0], nil); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
	case "sleep":
		waitForSignal()
	default:
		fmt.Fprintf(os.Stderr, "probe: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}
