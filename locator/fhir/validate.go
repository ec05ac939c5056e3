package fhir

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"errors"
	"fmt"
	"slices"
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

// r4Validator is the schema, loaded once on first use; each resource type's definitions are
// compiled when that type is first validated (a few milliseconds to tens), and never change.
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
	// Each definition is a resource of its own, its references rewritten to its siblings:
	// the compiler loads (and checks against the metaschema) only the definitions a
	// resource type reaches, not the whole schema at the first use.
	root, _ := doc.(map[string]any)
	defs, _ := root["definitions"].(map[string]any)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft6)
	for name, def := range defs {
		d, ok := def.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("the R4 schema's definition %s is not an object", name)
		}
		rewriteRefs(d)
		if err := c.AddResource(r4SchemaURL+"/"+name, d); err != nil {
			return nil, fmt.Errorf("load the R4 schema of %s: %w", name, err)
		}
	}
	return &validator{compiler: c, types: types, byType: map[string]*jsonschema.Schema{}}, nil
}

// rewriteRefs turns the schema's internal references (#/definitions/Meta) into references
// to the sibling resources (Meta, relative to r4SchemaURL/…).
func rewriteRefs(v any) {
	switch n := v.(type) {
	case map[string]any:
		for k, x := range n {
			if ref, ok := x.(string); ok && k == "$ref" {
				n[k] = strings.TrimPrefix(ref, "#/definitions/")
				continue
			}
			rewriteRefs(x)
		}
	case []any:
		for _, x := range n {
			rewriteRefs(x)
		}
	}
}

func (v *validator) schema(resourceType string) (*jsonschema.Schema, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.byType[resourceType]; ok {
		return s, nil
	}
	s, err := v.compiler.Compile(r4SchemaURL + "/" + resourceType)
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
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return Errorf(400, "structure", "", "malformed JSON: %v", err)
	}
	return validateR4Instance(inst, resourceType)
}

// validateR4Instance is ValidateR4 of a resource already parsed as jsonschema reads JSON
// (objects as map[string]any, numbers as json.Number), so that a body is parsed once for
// its schema and the resources nested in it are checked without encoding and parsing
// each again.
func validateR4Instance(inst any, resourceType string) error {
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
	if err := s.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return fmt.Errorf("validate %s: %w", resourceType, err)
		}
		return issueOf(resourceType, deepest(ve))
	}
	// The schema takes a resource inside this one (contained, Bundle.entry.resource,
	// Parameters.parameter.resource…) as any object with a resourceType; check each against
	// its own type. No R4 data type has a resourceType element, so every nested object that
	// has one is such a resource.
	return validateEmbedded(inst, nil, resourceType)
}

// validateEmbedded finds the resources nested in v (at the JSON location loc of the outer
// resource) and validates each against its own type, naming elements under the outer
// resource's FHIRPath.
func validateEmbedded(v any, loc []string, outer string) error {
	switch n := v.(type) {
	case map[string]any:
		if rt, ok := n["resourceType"]; ok && len(loc) > 0 {
			prefix := FHIRPath(outer, loc)
			name, _ := rt.(string)
			if !IsResourceType(name) {
				return Errorf(400, "structure", prefix+".resourceType", "a resource inside %s needs an R4 resourceType (got %q)", outer, Clip(name))
			}
			if len(loc) >= 2 && loc[len(loc)-2] == "contained" {
				if _, nested := n["contained"]; nested {
					return Errorf(400, "structure", prefix+".contained", "a contained resource must not contain resources (R4 dom-2)")
				}
			}
			err := validateR4Instance(n, name)
			var fe *Error
			if errors.As(err, &fe) {
				for j, e := range fe.Issue.Expression {
					fe.Issue.Expression[j] = prefix + strings.TrimPrefix(e, name)
				}
				return fe
			}
			return err
		}
		keys := make([]string, 0, len(n))
		for k := range n {
			keys = append(keys, k)
		}
		slices.Sort(keys) // the first error in a stable order
		for _, k := range keys {
			if err := validateEmbedded(n[k], append(slices.Clip(loc), k), outer); err != nil {
				return err
			}
		}
	case []any:
		for i, item := range n {
			if err := validateEmbedded(item, append(slices.Clip(loc), strconv.Itoa(i)), outer); err != nil {
				return err
			}
		}
	}
	return nil
}

// deepest is the most specific error of the tree: the leaf whose element lies deepest.
func deepest(ve *jsonschema.ValidationError) *jsonschema.ValidationError {
	best := ve
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			// The deepest element; among equals the first in location order, so that the
			// same resource always gets the same error.
			deeper := len(e.InstanceLocation) > len(best.InstanceLocation)
			tie := len(e.InstanceLocation) == len(best.InstanceLocation) &&
				strings.Join(e.InstanceLocation, "/") < strings.Join(best.InstanceLocation, "/")
			if len(best.Causes) > 0 || deeper || tie {
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
