// Command fake-gpu-plugin is a kubelet device plugin (API v1beta1) for tests: it
// advertises N fake devices of one resource (default nvidia.com/gpu) and, on Allocate,
// puts the allocated device IDs into the container's environment the way NVIDIA's
// plugin does (NVIDIA_VISIBLE_DEVICES, plus CUDA_VISIBLE_DEVICES). No device nodes or
// mounts: the devices exist only for the scheduler and the kubelet's accounting.
//
//	fake-gpu-plugin -count 2 [-resource nvidia.com/gpu] [-dir /var/lib/kubelet/device-plugins]
//
// It re-registers whenever the kubelet's socket is re-created (kubelet restart).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

type plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	devices []*pluginapi.Device
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

// ListAndWatch sends the device list once and then keeps the stream open: the fake
// devices never change health.
func (p *plugin) ListAndWatch(_ *pluginapi.Empty, s pluginapi.DevicePlugin_ListAndWatchServer) error {
	if err := s.Send(&pluginapi.ListAndWatchResponse{Devices: p.devices}); err != nil {
		return err
	}
	<-s.Context().Done()
	return nil
}

func (p *plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for _, c := range req.ContainerRequests {
		ids := strings.Join(c.DevicesIds, ",")
		log.Printf("allocate %s", ids)
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{"NVIDIA_VISIBLE_DEVICES": ids, "CUDA_VISIBLE_DEVICES": ids},
		})
	}
	return resp, nil
}

func (p *plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

func (p *plugin) GetPreferredAllocation(context.Context, *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	return &pluginapi.PreferredAllocationResponse{}, nil
}

func register(dir, endpoint, resource string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, "kubelet.sock"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version: pluginapi.Version, Endpoint: endpoint, ResourceName: resource,
		Options: &pluginapi.DevicePluginOptions{},
	})
	return err
}

func inode(path string) uint64 {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return 0
	}
	return st.Ino
}

func main() {
	count := flag.Int("count", 2, "number of fake devices")
	resource := flag.String("resource", "nvidia.com/gpu", "extended resource name")
	dir := flag.String("dir", pluginapi.DevicePluginPath, "kubelet device-plugin directory")
	flag.Parse()
	if *count < 0 {
		log.Fatalf("-count must be >= 0, got %d", *count)
	}
	p := &plugin{}
	for i := 0; i < *count; i++ {
		p.devices = append(p.devices, &pluginapi.Device{ID: fmt.Sprintf("GPU-fake-%d", i), Health: pluginapi.Healthy})
	}
	endpoint := fmt.Sprintf("kubesweep-fake-gpu-%d.sock", os.Getpid())
	sock := filepath.Join(*dir, endpoint)
	var srv *grpc.Server
	serve := func() error {
		if srv != nil {
			srv.Stop()
		}
		_ = os.Remove(sock)
		lis, err := net.Listen("unix", sock)
		if err != nil {
			return fmt.Errorf("listen %s: %w", sock, err)
		}
		srv = grpc.NewServer()
		pluginapi.RegisterDevicePluginServer(srv, p)
		go func(s *grpc.Server) { _ = s.Serve(lis) }(srv)
		return nil
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	kubeletSock := filepath.Join(*dir, "kubelet.sock")
	var registered uint64 // inode of the kubelet socket we registered with
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			if srv != nil {
				srv.Stop()
			}
			_ = os.Remove(sock)
			return
		case <-tick.C:
			// A (re)started kubelet re-creates its socket, empties the directory (our
			// socket included) and forgets plugins: serve afresh and register again.
			ino := inode(kubeletSock)
			if ino == 0 || ino == registered {
				continue
			}
			if err := serve(); err != nil {
				log.Printf("%v (retrying)", err)
				continue
			}
			if err := register(*dir, endpoint, *resource); err != nil {
				log.Printf("register with kubelet: %v (retrying)", err)
				continue
			}
			registered = ino
			log.Printf("registered %d x %s with the kubelet", *count, *resource)
		}
	}
}
