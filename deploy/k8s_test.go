package deploy_test

// The Kubernetes manifests in k8s/ are rendered here as `kubectl kustomize`
// renders them (krusty is the library it embeds), and every object is
// decoded strictly into the real API types: a misspelt or misplaced field
// fails the test instead of being dropped by the API server. The
// containers' environment, arguments, ports and probes are then checked
// against what the binaries read (the config package) and serve (the
// OpenAPI document, which httpapi's tests hold equal to its routes).

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/viswals/viswals/config"
)

// fileSuffix marks the settings that name a file holding a secret.
const fileSuffix = config.FileSuffix

// kustomizations are the directories `kubectl kustomize` must render.
var kustomizations = []string{"k8s/base", "k8s/overlays/production", "k8s"}

// manifests are the rendered objects of one kustomization, decoded into
// the Kubernetes API types, by kind.
type manifests struct {
	deployments     []appsv1.Deployment
	jobs            []batchv1.Job
	services        []corev1.Service
	configMaps      []corev1.ConfigMap
	serviceAccounts []corev1.ServiceAccount
	pvcs            []corev1.PersistentVolumeClaim
	namespaces      []corev1.Namespace
	hpas            []autoscalingv2.HorizontalPodAutoscaler
	pdbs            []policyv1.PodDisruptionBudget
	netpols         []networkingv1.NetworkPolicy

	// The operators' custom resources, whose types are not in k8s.io/api:
	// decoded into the few fields the project relies on.
	rabbitmq []rabbitmqCluster
	postgres []cnpgCluster
	redis    []redisCluster
}

type objectMeta struct {
	Name string `json:"name"`
}

// rabbitmqCluster is the part of a RabbitMQ Cluster Operator
// RabbitmqCluster the project relies on.
type rabbitmqCluster struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Replicas *int32 `json:"replicas"`
	} `json:"spec"`
}

// cnpgCluster is the part of a CloudNativePG Cluster the project relies
// on: the operator names the owner's Secret <cluster>-app.
type cnpgCluster struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Instances int `json:"instances"`
		Bootstrap struct {
			InitDB struct {
				Database string `json:"database"`
				Owner    string `json:"owner"`
			} `json:"initdb"`
		} `json:"bootstrap"`
	} `json:"spec"`
}

// redisCluster is the part of an OT-Container-Kit RedisCluster the
// project relies on.
type redisCluster struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		ClusterSize      *int32 `json:"clusterSize"`
		KubernetesConfig struct {
			RedisSecret *struct {
				Name string `json:"name"`
				Key  string `json:"key"`
			} `json:"redisSecret"`
		} `json:"kubernetesConfig"`
	} `json:"spec"`
}

// render renders the kustomization in dir as `kubectl kustomize dir`
// does and decodes each object by its apiVersion and kind. An object of
// any other type fails the test: add its type here first.
func render(t *testing.T, dir string) manifests {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	require.NoError(t, err, "kustomize %s", dir)
	var m manifests
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		require.NoError(t, err)
		id := r.GetApiVersion() + " " + r.GetKind() + " " + r.GetName()
		var err2 error
		switch r.GetApiVersion() + " " + r.GetKind() {
		case "apps/v1 Deployment":
			m.deployments, err2 = decodeAppend(y, m.deployments)
		case "batch/v1 Job":
			m.jobs, err2 = decodeAppend(y, m.jobs)
		case "v1 Service":
			m.services, err2 = decodeAppend(y, m.services)
		case "v1 ConfigMap":
			m.configMaps, err2 = decodeAppend(y, m.configMaps)
		case "v1 ServiceAccount":
			m.serviceAccounts, err2 = decodeAppend(y, m.serviceAccounts)
		case "v1 PersistentVolumeClaim":
			m.pvcs, err2 = decodeAppend(y, m.pvcs)
		case "v1 Namespace":
			m.namespaces, err2 = decodeAppend(y, m.namespaces)
		case "autoscaling/v2 HorizontalPodAutoscaler":
			m.hpas, err2 = decodeAppend(y, m.hpas)
		case "policy/v1 PodDisruptionBudget":
			m.pdbs, err2 = decodeAppend(y, m.pdbs)
		case "networking.k8s.io/v1 NetworkPolicy":
			m.netpols, err2 = decodeAppend(y, m.netpols)
		case "rabbitmq.com/v1beta1 RabbitmqCluster":
			m.rabbitmq, err2 = decodeLooseAppend(y, m.rabbitmq)
		case "postgresql.cnpg.io/v1 Cluster":
			m.postgres, err2 = decodeLooseAppend(y, m.postgres)
		case "redis.redis.opstreelabs.in/v1beta2 RedisCluster":
			m.redis, err2 = decodeLooseAppend(y, m.redis)
		default:
			t.Errorf("%s: %s renders an object of a type the test does not know; add it to render", dir, id)
			continue
		}
		assert.NoError(t, err2, "%s: %s", dir, id)
	}
	return m
}

// decodeAppend decodes y strictly into a T: an unknown or duplicate
// field is an error.
func decodeAppend[T any](y []byte, to []T) ([]T, error) {
	var v T
	if err := k8syaml.UnmarshalStrict(y, &v); err != nil {
		return to, err
	}
	return append(to, v), nil
}

// decodeLooseAppend decodes the fields of T from y, ignoring the others:
// the custom resources' own types are not imported.
func decodeLooseAppend[T any](y []byte, to []T) ([]T, error) {
	var v T
	if err := k8syaml.Unmarshal(y, &v); err != nil {
		return to, err
	}
	return append(to, v), nil
}

// TestStrictDecodingRefusesUnknownFields shows that the decoding the
// manifests go through fails on the mistakes it is there to catch.
func TestStrictDecodingRefusesUnknownFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"misspelt field", "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 2\n", `unknown field "replica"`},
		{"field at the wrong level", "apiVersion: v1\nkind: Service\nspec:\n  ports:\n  - port: 80\n    path: /\n", `unknown field "path"`},
		{"duplicate field", "apiVersion: v1\nkind: ConfigMap\ndata:\n  A: x\n  A: y\n", `"A" already set`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var err error
			switch {
			case strings.Contains(tt.yaml, "Deployment"):
				_, err = decodeAppend[appsv1.Deployment]([]byte(tt.yaml), nil)
			case strings.Contains(tt.yaml, "Service"):
				_, err = decodeAppend[corev1.Service]([]byte(tt.yaml), nil)
			default:
				_, err = decodeAppend[corev1.ConfigMap]([]byte(tt.yaml), nil)
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

// TestKubernetesManifests renders the base and every overlay and checks
// the objects against each other and against the code.
func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			m := render(t, dir)
			t.Run("workloads", func(t *testing.T) { checkWorkloads(t, m) })
			t.Run("API service, autoscaler and disruption budget", func(t *testing.T) { checkAPIObjects(t, m) })
			t.Run("network policies", func(t *testing.T) { checkNetworkPolicies(t, m) })
			t.Run("stateful services", func(t *testing.T) { checkStatefulServices(t, m) })
		})
	}
}

// component is the app.kubernetes.io/component label of the project's
// pods.
const componentLabel = "app.kubernetes.io/component"

func deployment(t *testing.T, m manifests, component string) appsv1.Deployment {
	t.Helper()
	for _, d := range m.deployments {
		if d.Spec.Template.Labels[componentLabel] == component {
			return d
		}
	}
	require.FailNow(t, "no Deployment of component "+component)
	return appsv1.Deployment{}
}

// checkWorkloads checks every pod the project runs: the ingest and API
// Deployments and the producer Job.
func checkWorkloads(t *testing.T, m manifests) {
	uid := dockerfileUser(t)
	ingest, api := deployment(t, m, "ingest"), deployment(t, m, "api")
	require.Len(t, m.jobs, 1, "the producer Job")
	pods := map[string]corev1.PodTemplateSpec{"ingest": ingest.Spec.Template, "api": api.Spec.Template, "producer": m.jobs[0].Spec.Template}
	for name, d := range map[string]appsv1.Deployment{"ingest": ingest, "api": api} {
		assert.Equal(t, d.Spec.Selector.MatchLabels, subset(d.Spec.Template.Labels, d.Spec.Selector.MatchLabels), "%s: the selector matches the pods", name)
	}
	for name, pod := range pods {
		t.Run(name, func(t *testing.T) {
			checkPodSecurity(t, pod.Spec, uid)
			require.Len(t, pod.Spec.Containers, 1)
			c := pod.Spec.Containers[0]
			checkResources(t, c)
			env := containerEnv(t, m, c)
			if name == "producer" {
				checkProducer(t, pod.Spec, c, env)
				return
			}
			cfg := checkConsumer(t, pod.Spec, c, env)
			wantRole := name
			assert.Equal(t, []string{"serve", "--roles", wantRole}, c.Args, "the consumer serves one role per Deployment")
			if name == "ingest" {
				require.NotNil(t, pod.Spec.TerminationGracePeriodSeconds)
				assert.Greater(t, float64(*pod.Spec.TerminationGracePeriodSeconds), cfg.DrainTimeout.Seconds(),
					"the kubelet waits longer than the consumer drains what is in flight")
				assert.True(t, cfg.Migrate, "the ingest workers run the migrations")
			} else {
				assert.False(t, cfg.Migrate, "one kind of pod runs the migrations, not both")
				assert.NotContains(t, env, "RABBITMQ_CONN_URL_FILE", "an API pod needs no RabbitMQ credential")
			}
		})
	}
}

// subset returns the entries of labels that want names.
func subset(labels, want map[string]string) map[string]string {
	out := map[string]string{}
	for k := range want {
		if v, ok := labels[k]; ok {
			out[k] = v
		}
	}
	return out
}

// dockerfileUser returns the numeric user the image runs as.
func dockerfileUser(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^USER (\d+)(?::\d+)?$`).FindSubmatch(b)
	require.NotNil(t, m, "the Dockerfile's USER is numeric, so that runAsNonRoot can check it")
	var uid int64
	_, err = fmt.Sscan(string(m[1]), &uid)
	require.NoError(t, err)
	require.NotZero(t, uid)
	return uid
}

func checkPodSecurity(t *testing.T, spec corev1.PodSpec, uid int64) {
	t.Helper()
	sc := spec.SecurityContext
	require.NotNil(t, sc, "pod securityContext")
	assert.Equal(t, ptrTrue, sc.RunAsNonRoot, "runAsNonRoot")
	if assert.NotNil(t, sc.RunAsUser) {
		assert.Equal(t, uid, *sc.RunAsUser, "runs as the Dockerfile's USER")
	}
	if assert.NotNil(t, sc.SeccompProfile) {
		assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, sc.SeccompProfile.Type)
	}
	assert.Equal(t, ptrFalse, spec.AutomountServiceAccountToken, "the pods use no Kubernetes API token")
	for _, c := range spec.Containers {
		csc := c.SecurityContext
		require.NotNil(t, csc, "%s: container securityContext", c.Name)
		assert.Equal(t, ptrFalse, csc.AllowPrivilegeEscalation, "%s: allowPrivilegeEscalation", c.Name)
		assert.Equal(t, ptrTrue, csc.ReadOnlyRootFilesystem, "%s: readOnlyRootFilesystem", c.Name)
		if assert.NotNil(t, csc.Capabilities, "%s: capabilities", c.Name) {
			assert.Equal(t, []corev1.Capability{"ALL"}, csc.Capabilities.Drop, "%s: drops every capability", c.Name)
			assert.Empty(t, csc.Capabilities.Add, "%s: adds none", c.Name)
		}
		assert.Nil(t, csc.Privileged, "%s: privileged", c.Name)
	}
}

var ptrTrue, ptrFalse = new(bool), new(bool)

func init() { *ptrTrue = true }

// checkResources checks that a container has CPU and memory requests and
// limits, each request within its limit.
func checkResources(t *testing.T, c corev1.Container) {
	t.Helper()
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[r]
		lim, okLim := c.Resources.Limits[r]
		if assert.True(t, okReq, "%s: %s request", c.Name, r) && assert.True(t, okLim, "%s: %s limit", c.Name, r) {
			assert.LessOrEqual(t, req.Cmp(lim), 0, "%s: %s request %s above its limit %s", c.Name, r, req.String(), lim.String())
		}
	}
}

// containerEnv returns a container's environment: its env entries over
// the ConfigMaps it takes with envFrom, which must be rendered alongside.
func containerEnv(t *testing.T, m manifests, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		require.NotNil(t, from.ConfigMapRef, "%s: envFrom only from ConfigMaps (secrets are files)", c.Name)
		i := slices.IndexFunc(m.configMaps, func(cm corev1.ConfigMap) bool { return cm.Name == from.ConfigMapRef.Name })
		require.GreaterOrEqual(t, i, 0, "%s: envFrom names ConfigMap %s, which is not rendered", c.Name, from.ConfigMapRef.Name)
		assert.Empty(t, from.Prefix)
		for k, v := range m.configMaps[i].Data {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		assert.Nil(t, e.ValueFrom, "%s: %s: values are literal; secrets are mounted as files (the _FILE settings)", c.Name, e.Name)
		env[e.Name] = e.Value
	}
	return env
}

// settingsRead returns the environment variables a parser reads: every
// setting asks for its variable as it is registered.
func settingsRead(parse func(config.Getenv)) map[string]bool {
	read := map[string]bool{}
	parse(func(name string) string {
		read[name] = true
		return ""
	})
	return read
}

// secretFiles checks that every *_FILE setting names a file the container
// mounts from a Secret, and returns a getenv for the parsers with each of
// those files replaced by a placeholder file.
func secretFiles(t *testing.T, spec corev1.PodSpec, c corev1.Container, env map[string]string) config.Getenv {
	t.Helper()
	dir := t.TempDir()
	local := map[string]string{}
	for name, p := range env {
		if !strings.HasSuffix(name, fileSuffix) {
			continue
		}
		secret, key := secretAt(t, spec, c, p)
		assert.NotEmpty(t, secret, "%s: %s=%s is not a file mounted from a Secret", c.Name, name, p)
		if name == "POSTGRES_CONN_URL_FILE" || name == "REDIS_CONN_URL_FILE" || name == "RABBITMQ_CONN_URL_FILE" {
			assert.Contains(t, []string{"uri", "url"}, key, "%s: %s holds a URL", c.Name, name)
		}
		f := filepath.Join(dir, strings.ToLower(name))
		require.NoError(t, os.WriteFile(f, []byte(placeholder(name)), 0o600))
		local[name] = f
	}
	return func(name string) string {
		if f, ok := local[name]; ok {
			return f
		}
		return env[name]
	}
}

// placeholder is a value of the right form for a secret setting.
func placeholder(fileVar string) string {
	switch strings.TrimSuffix(fileVar, fileSuffix) {
	case "POSTGRES_CONN_URL":
		return "postgresql://viswals:secret@viswals-pg-rw:5432/viswals"
	case "REDIS_CONN_URL":
		return "redis://:secret@viswals-redis-leader:6379/0"
	case "RABBITMQ_CONN_URL":
		return "amqp://viswals:secret@viswals-rabbitmq:5672/"
	default:
		return "placeholder"
	}
}

// secretAt returns the Secret and key mounted at path p in container c,
// or "" when p is no file of a Secret.
func secretAt(t *testing.T, spec corev1.PodSpec, c corev1.Container, p string) (secret, key string) {
	t.Helper()
	for _, vm := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(p, strings.TrimSuffix(vm.MountPath, "/")+"/")
		if !ok {
			continue
		}
		assert.True(t, vm.ReadOnly, "%s: secrets are mounted read-only", c.Name)
		assert.Empty(t, vm.SubPath, "%s: a subPath mount would not see a rotated secret", c.Name)
		i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
		require.GreaterOrEqual(t, i, 0, "%s: mount of unknown volume %s", c.Name, vm.Name)
		v := spec.Volumes[i]
		var sources []corev1.SecretProjection
		switch {
		case v.Secret != nil:
			sources = append(sources, corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: v.Secret.SecretName}, Items: v.Secret.Items})
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.Secret != nil {
					sources = append(sources, *s.Secret)
				}
			}
		}
		for _, s := range sources {
			for _, it := range s.Items {
				if it.Path == rel {
					return s.Name, it.Key
				}
			}
		}
	}
	return "", ""
}

// checkConsumer checks a consumer container's settings by parsing them as
// the consumer does, and its port and probes against what it serves.
func checkConsumer(t *testing.T, spec corev1.PodSpec, c corev1.Container, env map[string]string) config.Consumer {
	t.Helper()
	assert.Empty(t, c.Command, "the image's entrypoint is the consumer")
	read := settingsRead(func(g config.Getenv) { _, _, _ = config.ParseConsumer("consumer", nil, g, io.Discard) })
	for name := range env {
		assert.True(t, read[name], "%s: %s is set but the consumer reads no such setting", c.Name, name)
	}
	for _, secret := range []string{"ENCRYPTION_KEY", "ENCRYPTION_KEYS", "POSTGRES_CONN_URL", "REDIS_CONN_URL", "RABBITMQ_CONN_URL"} {
		assert.NotContains(t, env, secret, "%s: %s is set in the environment; mount it and set %s%s", c.Name, secret, secret, fileSuffix)
	}
	args := slices.Clone(c.Args)
	require.NotEmpty(t, args)
	require.Equal(t, "serve", args[0])
	cfg, rest, err := config.ParseConsumer("consumer", args[1:], secretFiles(t, spec, c, env), io.Discard)
	require.NoError(t, err, "the consumer refuses its settings")
	assert.Empty(t, rest)

	// The port it listens on, on every interface, is the container's
	// port named http, which the probes use.
	host, port, ok := strings.Cut(cfg.Addr, ":")
	require.True(t, ok)
	assert.Empty(t, host, "CONSUMER_PORT listens on every interface of the pod, or the kubelet's probes reach nothing")
	i := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "http" })
	require.GreaterOrEqual(t, i, 0, "a container port named http")
	assert.Equal(t, port, fmt.Sprint(c.Ports[i].ContainerPort), "the container port is CONSUMER_PORT's")

	public := publicRoutes(t)
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}, {"startup", c.StartupProbe, "/healthz"}} {
		if !assert.NotNil(t, p.probe, "%s probe", p.name) || !assert.NotNil(t, p.probe.HTTPGet, "%s probe is an HTTP GET", p.name) {
			continue
		}
		assert.Equal(t, p.path, p.probe.HTTPGet.Path, "%s probe", p.name)
		assert.True(t, public[p.probe.HTTPGet.Path], "%s probe: GET %s is not a route the API serves without a token", p.name, p.probe.HTTPGet.Path)
		assert.Equal(t, intstr.FromString("http"), p.probe.HTTPGet.Port, "%s probe port", p.name)
	}
	return cfg
}

// publicRoutes returns the paths the OpenAPI document declares with a GET
// that needs no credential.
func publicRoutes(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "httpapi", "openapi.yaml"))
	require.NoError(t, err)
	var doc struct {
		Paths map[string]struct {
			Get *struct {
				Security *[]map[string][]string `yaml:"security"`
			} `yaml:"get"`
		} `yaml:"paths"`
	}
	require.NoError(t, yaml.Unmarshal(b, &doc))
	public := map[string]bool{}
	for p, item := range doc.Paths {
		if item.Get != nil && item.Get.Security != nil && len(*item.Get.Security) == 0 {
			public[p] = true
		}
	}
	return public
}

// checkProducer checks the producer Job's container: its settings parse,
// its input is on a mounted volume and its rejects file is writable.
func checkProducer(t *testing.T, spec corev1.PodSpec, c corev1.Container, env map[string]string) {
	t.Helper()
	assert.Equal(t, []string{"/usr/local/bin/producer"}, c.Command, "the image's producer binary")
	assert.Contains(t, dockerfileBinaries(t), "./cmd/"+path.Base(c.Command[0]))
	read := settingsRead(func(g config.Getenv) { _, _ = config.ParseProducer([]string{"-"}, g, io.Discard) })
	for name := range env {
		assert.True(t, read[name], "%s: %s is set but the producer reads no such setting", c.Name, name)
	}
	cfg, err := config.ParseProducer(c.Args, secretFiles(t, spec, c, env), io.Discard)
	require.NoError(t, err, "the producer refuses its settings")
	assert.Equal(t, corev1.RestartPolicyNever, spec.RestartPolicy, "a failed load is retried by the Job, in a new pod")

	in := mountOf(t, spec, c, cfg.Input)
	require.NotNil(t, in, "the input %s is on no mounted volume", cfg.Input)
	i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == in.Name })
	require.GreaterOrEqual(t, i, 0)
	v := spec.Volumes[i]
	assert.True(t, v.PersistentVolumeClaim != nil || v.ConfigMap != nil, "the input's volume %s is a PVC or a ConfigMap", v.Name)
	rejects := cfg.RejectsPath
	require.NotEmpty(t, rejects, "the Job names its rejects file (--rejects), on a volume: the root filesystem is read-only")
	out2 := mountOf(t, spec, c, rejects)
	if assert.NotNil(t, out2, "the rejects file %s is on no mounted volume, and the root filesystem is read-only", rejects) {
		assert.False(t, out2.ReadOnly, "the rejects file %s is on a read-only mount", rejects)
	}
}

// mountOf returns the volume mount that holds path p, or nil.
func mountOf(t *testing.T, spec corev1.PodSpec, c corev1.Container, p string) *corev1.VolumeMount {
	t.Helper()
	for i, vm := range c.VolumeMounts {
		if strings.HasPrefix(p, strings.TrimSuffix(vm.MountPath, "/")+"/") {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// checkAPIObjects checks that the Service, the autoscaler and the
// disruption budget point at the API's pods and port.
func checkAPIObjects(t *testing.T, m manifests) {
	api := deployment(t, m, "api")
	pods := api.Spec.Template.Labels
	port := api.Spec.Template.Spec.Containers[0].Ports[0]

	require.Len(t, m.services, 1, "one Service, the API's; the operators make the backends'")
	svc := m.services[0]
	assert.Equal(t, svc.Spec.Selector, subset(pods, svc.Spec.Selector), "the Service selects the API pods")
	assert.NotEmpty(t, svc.Spec.Selector)
	require.Len(t, svc.Spec.Ports, 1)
	tp := svc.Spec.Ports[0].TargetPort
	assert.True(t, tp == intstr.FromString(port.Name) || tp == intstr.FromInt32(port.ContainerPort), "the Service's targetPort %v is the API's port", tp)
	assert.Equal(t, corev1.ServiceTypeClusterIP, svc.Spec.Type)

	require.Len(t, m.hpas, 1)
	hpa := m.hpas[0]
	assert.Equal(t, autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: api.Name}, hpa.Spec.ScaleTargetRef)
	assert.Nil(t, api.Spec.Replicas, "the autoscaler owns the API's replica count")
	if assert.NotNil(t, hpa.Spec.MinReplicas) {
		assert.GreaterOrEqual(t, *hpa.Spec.MinReplicas, int32(2), "two API replicas at least, so that one can be lost")
		assert.Greater(t, hpa.Spec.MaxReplicas, *hpa.Spec.MinReplicas)
	}
	require.Len(t, hpa.Spec.Metrics, 1)
	metric := hpa.Spec.Metrics[0]
	assert.Equal(t, autoscalingv2.ResourceMetricSourceType, metric.Type)
	if assert.NotNil(t, metric.Resource) {
		assert.Equal(t, corev1.ResourceCPU, metric.Resource.Name, "scaled on CPU")
		assert.Equal(t, autoscalingv2.UtilizationMetricType, metric.Resource.Target.Type, "utilization, of the CPU request")
	}

	require.Len(t, m.pdbs, 1)
	pdb := m.pdbs[0]
	require.NotNil(t, pdb.Spec.Selector)
	assert.Equal(t, pdb.Spec.Selector.MatchLabels, subset(pods, pdb.Spec.Selector.MatchLabels), "the PodDisruptionBudget selects the API pods")
	assert.NotEmpty(t, pdb.Spec.Selector.MatchLabels)
	assert.True(t, pdb.Spec.MaxUnavailable != nil || pdb.Spec.MinAvailable != nil)
}

// checkNetworkPolicies checks that ingress is denied by default and that
// of the project's pods only the API's port is open to any client.
func checkNetworkPolicies(t *testing.T, m manifests) {
	api := deployment(t, m, "api")
	apiPort := api.Spec.Template.Spec.Containers[0].Ports[0]
	denyAll := false
	for _, np := range m.netpols {
		if len(np.Spec.PodSelector.MatchLabels) == 0 && len(np.Spec.PodSelector.MatchExpressions) == 0 &&
			slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) && len(np.Spec.Ingress) == 0 {
			denyAll = true
		}
	}
	assert.True(t, denyAll, "a policy denies all ingress in the namespace by default")

	pods := map[string]map[string]string{"ingest": deployment(t, m, "ingest").Spec.Template.Labels, "api": api.Spec.Template.Labels}
	for _, j := range m.jobs {
		pods["producer"] = j.Spec.Template.Labels
	}
	for _, np := range m.netpols {
		for name, labels := range pods {
			if !selects(t, np.Spec.PodSelector.MatchLabels, np.Spec.PodSelector.MatchExpressions, labels) {
				continue
			}
			for _, rule := range np.Spec.Ingress {
				if len(rule.From) > 0 {
					continue // from chosen peers only
				}
				assert.Equal(t, "api", name, "policy %s lets any client reach the %s pods", np.Name, name)
				require.Len(t, rule.Ports, 1, "policy %s opens one port", np.Name)
				p := rule.Ports[0].Port
				assert.True(t, *p == intstr.FromString(apiPort.Name) || *p == intstr.FromInt32(apiPort.ContainerPort), "policy %s opens the API's port, not %v", np.Name, p)
			}
		}
	}
	apiReachable := slices.ContainsFunc(m.netpols, func(np networkingv1.NetworkPolicy) bool {
		return selects(t, np.Spec.PodSelector.MatchLabels, np.Spec.PodSelector.MatchExpressions, pods["api"]) &&
			slices.ContainsFunc(np.Spec.Ingress, func(r networkingv1.NetworkPolicyIngressRule) bool { return len(r.From) == 0 })
	})
	assert.True(t, apiReachable, "a policy lets clients reach the API")
}

// selects reports whether a label selector (matchLabels and In/NotIn/
// Exists/DoesNotExist expressions) selects labels; an empty selector
// selects everything.
func selects(t *testing.T, match map[string]string, exprs []metav1.LabelSelectorRequirement, labels map[string]string) bool {
	t.Helper()
	for k, v := range match {
		if labels[k] != v {
			return false
		}
	}
	for _, e := range exprs {
		v, ok := labels[e.Key]
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			if !ok || !slices.Contains(e.Values, v) {
				return false
			}
		case metav1.LabelSelectorOpNotIn:
			if ok && slices.Contains(e.Values, v) {
				return false
			}
		case metav1.LabelSelectorOpExists:
			if !ok {
				return false
			}
		case metav1.LabelSelectorOpDoesNotExist:
			if ok {
				return false
			}
		default:
			t.Errorf("unknown selector operator %q", e.Operator)
		}
	}
	return true
}

// checkStatefulServices checks the operators' resources and that the
// Secrets the pods mount are the ones the operators write or read.
func checkStatefulServices(t *testing.T, m manifests) {
	require.Len(t, m.rabbitmq, 1, "a RabbitmqCluster")
	if assert.NotNil(t, m.rabbitmq[0].Spec.Replicas, "RabbitmqCluster spec.replicas") {
		assert.Equal(t, int32(3), *m.rabbitmq[0].Spec.Replicas, "three RabbitMQ nodes, so that a quorum queue survives losing one")
	}

	require.Len(t, m.postgres, 1, "a CloudNativePG Cluster")
	pg := m.postgres[0]
	assert.GreaterOrEqual(t, pg.Spec.Instances, 2, "a primary and a replica to fail over to")
	assert.NotEmpty(t, pg.Spec.Bootstrap.InitDB.Owner)

	require.Len(t, m.redis, 1, "a RedisCluster")
	rc := m.redis[0]
	if assert.NotNil(t, rc.Spec.ClusterSize, "RedisCluster spec.clusterSize") {
		assert.GreaterOrEqual(t, *rc.Spec.ClusterSize, int32(3), "a Redis Cluster needs three masters")
	}
	require.NotNil(t, rc.Spec.KubernetesConfig.RedisSecret, "Redis has a password")

	// Each pod's URL files come from the Secrets of these clusters: the
	// one CloudNativePG writes for the owner, and the project's own for
	// Redis and RabbitMQ (README: made from the operators' credentials).
	for _, d := range m.deployments {
		spec, c := d.Spec.Template.Spec, d.Spec.Template.Spec.Containers[0]
		env := containerEnv(t, m, c)
		if p, ok := env["POSTGRES_CONN_URL_FILE"]; assert.True(t, ok, "%s: POSTGRES_CONN_URL_FILE", d.Name) {
			secret, key := secretAt(t, spec, c, p)
			assert.Equal(t, pg.Metadata.Name+"-app", secret, "%s: Postgres URL from the Secret CloudNativePG makes for the Cluster's owner", d.Name)
			assert.Equal(t, "uri", key)
		}
		if p, ok := env["REDIS_CONN_URL_FILE"]; assert.True(t, ok, "%s: REDIS_CONN_URL_FILE", d.Name) {
			secret, _ := secretAt(t, spec, c, p)
			assert.Equal(t, rc.Metadata.Name+"-url", secret, "%s: Redis URL from the Secret beside the cluster's password Secret", d.Name)
			assert.NotEqual(t, rc.Spec.KubernetesConfig.RedisSecret.Name, secret)
		}
		if p, ok := env["RABBITMQ_CONN_URL_FILE"]; ok {
			secret, _ := secretAt(t, spec, c, p)
			assert.Equal(t, m.rabbitmq[0].Metadata.Name+"-url", secret, "%s: RabbitMQ URL from the Secret named for the cluster", d.Name)
		}
	}
}

// TestKubectlKustomize renders every kustomization with kubectl, where
// it is installed, and checks that it renders the same objects as the
// library the other tests use (in its own order).
func TestKubectlKustomize(t *testing.T) {
	t.Parallel()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed; TestKubernetesManifests renders with the library kubectl embeds")
	}
	for _, dir := range kustomizations {
		out, err := exec.Command(kubectl, "kustomize", dir).CombinedOutput()
		require.NoError(t, err, "kubectl kustomize %s: %s", dir, out)
		k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
		rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
		require.NoError(t, err)
		want, err := rm.AsYaml()
		require.NoError(t, err)
		got, lib := objects(t, out), objects(t, want)
		assert.ElementsMatch(t, slices.Collect(maps.Keys(lib)), slices.Collect(maps.Keys(got)), "kubectl kustomize %s: the objects", dir)
		for id, o := range lib {
			assert.Equal(t, o, got[id], "kubectl kustomize %s: %s", dir, id)
		}
	}
}

// objects decodes a stream of YAML documents by apiVersion, kind and
// name.
func objects(t *testing.T, stream []byte) map[string]map[string]any {
	t.Helper()
	objs := map[string]map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(stream))
	for {
		var o map[string]any
		err := dec.Decode(&o)
		if err == io.EOF {
			return objs
		}
		require.NoError(t, err)
		meta, _ := o["metadata"].(map[string]any)
		objs[fmt.Sprint(o["apiVersion"], " ", o["kind"], " ", meta["name"])] = o
	}
}
