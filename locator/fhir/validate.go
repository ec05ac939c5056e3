package fhir

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// r4Schema is the FHIR R4 (4.0.1) JSON schema restricted to the official R4
// StructureDefinitions, with the codes of every required binding: see r4/README.md for
// where it comes from and r4/trim.py for how it is made.
//
//go:embed r4/fhir.schema.json.gz
var r4Schema []byte

const r4SchemaURL = "http://hl7.org/fhir/json-schema/4.0"

// r4Validator is the compiled schema, built once on first use: compiling it takes a few
// hundred milliseconds and it never changes.
var r4Validator = sync.OnceValues(compileR4)

type validator struct {
	compiler *jsonschema.Compiler
	types    map[string]bool // the R4 resource types
	mu       sync.Mutex
	byType   map[string]*jsonschema.Schema
}

func compileR4() (*validator, error) {
	zr, err := gzip.NewReader(bytes.NewReader(r4Schema))
	if err != nil {
		return nil, fmt.Errorf("open the R4 schema: %w", err)
	}
	doc, err := jsonschema.UnmarshalJSON(zr)
	if err != nil {
		return nil, fmt.Errorf("read the R4 schema: %w", err)
	}
	types := map[string]bool{}
	if root, ok := doc.(map[string]any); ok {
		if d, ok := root["discriminator"].(map[string]any); ok {
			if m, ok := d["mapping"].(map[string]any); ok {
				for name := range m {
					types[name] = true
				}
			}
		}
	}
	if len(types) == 0 {
		return nil, errors.New("the R4 schema lists no resource types")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft6)
	if err := c.AddResource(r4SchemaURL, doc); err != nil {
		return nil, fmt.Errorf("load the R4 schema: %w", err)
	}
	return &validator{compiler: c, types: types, byType: map[string]*jsonschema.Schema{}}, nil
}

func (v *validator) schema(resourceType string) (*jsonschema.Schema, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.byType[resourceType]; ok {
		return s, nil
	}
	s, err := v.compiler.Compile(r4SchemaURL + "#/definitions/" + resourceType)
	if err != nil {
		return nil, fmt.Errorf("compile the R4 schema of %s: %w", resourceType, err)
	}
	v.byType[resourceType] = s
	return s, nil
}

// IsResourceType reports whether name is an R4 resource type.
func IsResourceType(name string) bool {
	v, err := r4Validator()
	return err == nil && v.types[name]
}

// ValidateR4 checks one JSON resource of type resourceType against FHIR R4: every element
// must be an R4 element of its type (extensions, primitive extensions such as _birthDate,
// meta.profile… are), of the right JSON type, primitives in their R4 format (an instant
// with seconds and zone, base64Binary, id, date…), codes of required bindings among their
// value set's codes. The error is a 400 OperationOutcome whose expression is the FHIRPath
// of the element at fault (Patient.meta.profile[0], Patient.address[1].use).
func ValidateR4(data []byte, resourceType string) error {
	if !IsResourceType(resourceType) {
		return Invalid(resourceType, "%q is not an R4 resource type", Clip(resourceType))
	}
	v, err := r4Validator()
	if err != nil {
		return err
	}
	s, err := v.schema(resourceType)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return Errorf(400, "structure", "", "malformed JSON: %v", err)
	}
	err = s.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("validate %s: %w", resourceType, err)
	}
	leaf := deepest(ve)
	// A resource inside another (contained, Bundle.entry.resource, Parameters.parameter
	// .resource) is checked against every resource type at once; check it again against
	// its own type, so that the error names its element.
	node := inst
	for i, seg := range leaf.InstanceLocation {
		switch n := node.(type) {
		case map[string]any:
			node = n[seg]
		case []any:
			j, err := strconv.Atoi(seg)
			if err != nil || j >= len(n) {
				return issueOf(resourceType, leaf)
			}
			node = n[j]
		default:
			return issueOf(resourceType, leaf)
		}
		if obj, ok := node.(map[string]any); ok {
			if _, embedded := obj["resourceType"]; embedded {
				return embeddedError(obj, FHIRPath(resourceType, leaf.InstanceLocation[:i+1]), resourceType, leaf)
			}
		}
	}
	return issueOf(resourceType, leaf)
}

// embeddedError validates a resource found inside another at the FHIRPath prefix against
// its own type, naming the element at fault under prefix.
func embeddedError(obj map[string]any, prefix, outer string, leaf *jsonschema.ValidationError) error {
	rt, _ := obj["resourceType"].(string)
	if !IsResourceType(rt) {
		return Errorf(400, "structure", prefix+".resourceType", "an embedded resource needs an R4 resourceType (got %q)", Clip(rt))
	}
	var buf bytes.Buffer
	if err := jsonEncode(&buf, obj); err != nil {
		return err
	}
	err := ValidateR4(buf.Bytes(), rt)
	var fe *Error
	if errors.As(err, &fe) {
		for j, e := range fe.Issue.Expression {
			fe.Issue.Expression[j] = prefix + strings.TrimPrefix(e, rt)
		}
		return fe
	}
	if err == nil {
		if strings.Contains(prefix, ".contained[") {
			// Valid on its own: R4 forbids nesting (dom-2).
			return Errorf(400, "structure", prefix, "a contained resource must not contain resources")
		}
		return issueOf(outer, leaf)
	}
	return err
}

// deepest is the most specific error of the tree: the leaf whose element lies deepest.
func deepest(ve *jsonschema.ValidationError) *jsonschema.ValidationError {
	best := ve
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			if len(best.Causes) > 0 || len(e.InstanceLocation) > len(best.InstanceLocation) {
				best = e
			}
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return best
}

var englishPrinter = message.NewPrinter(language.English)

// issueOf turns a schema error into the OperationOutcome issue about its element.
func issueOf(resourceType string, e *jsonschema.ValidationError) *Error {
	path := FHIRPath(resourceType, e.InstanceLocation)
	switch k := e.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		name := k.Properties[0]
		return Errorf(400, "structure", path+"."+strings.TrimPrefix(name, "_"), "unknown element %q: not an element of %s in FHIR R4", Clip(name), path)
	case *kind.Required:
		return Errorf(400, "required", path+"."+k.Missing[0], "%s.%s is required", path, k.Missing[0])
	case *kind.Enum:
		return Errorf(400, "code-invalid", path, "%s: %v is not one of the codes R4 allows (%s)", path, clipAny(k.Got), joinAny(k.Want))
	case *kind.Pattern:
		return Errorf(400, "value", path, "%s: %q is not a valid value of its R4 type", path, Clip(k.Got))
	case *kind.Type:
		return Errorf(400, "structure", path, "%s has the wrong JSON type (%s where %s is expected)", path, k.Got, strings.Join(k.Want, " or "))
	}
	return Errorf(400, "structure", path, "%s: %s", path, e.ErrorKind.LocalizedString(englishPrinter))
}

// FHIRPath spells a JSON location (meta, profile, 0) as the FHIRPath of the element
// (Patient.meta.profile[0]); a primitive's extension (_birthDate) names the primitive.
func FHIRPath(resourceType string, location []string) string {
	var b strings.Builder
	b.WriteString(resourceType)
	for _, seg := range location {
		if _, err := strconv.Atoi(seg); err == nil {
			b.WriteString("[" + seg + "]")
			continue
		}
		b.WriteString("." + strings.TrimPrefix(seg, "_"))
	}
	return b.String()
}

func clipAny(v any) string { return Clip(fmt.Sprintf("%q", fmt.Sprint(v))) }

func joinAny(vs []any) string {
	var s []string
	for _, v := range vs {
		s = append(s, fmt.Sprint(v))
	}
	return strings.Join(s, ", ")
}

func jsonEncode(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
